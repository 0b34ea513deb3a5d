/*
 * json_compat.h - decoding with a lua-cjson that cannot mark arrays or
 * decode integers (Debian 12's lua-cjson 2.1.0, from 2012).
 *
 * WHY THIS FILE EXISTS: current lua-cjson (openresty 2.1.0.14 and later,
 * what LuaRocks and OpenResty ship) marks decoded arrays with
 * cjson.array_mt and decodes integral literals as exact Lua integers, and
 * json_decode.c then uses its value untouched. Debian 12 packages 2.1.0, which
 * does neither: `[]` and `{}` decode alike, so a read-modify-write sends an
 * object back where the server had an array, and every number is a double
 * (rounded past 2^53, and 1 where the text said 1). This file gives the
 * same values as the current lua-cjson on that old one. Delete it (and the
 * one call in json_decode.c) the day Debian ships a current lua-cjson.
 */
#ifndef TRUTO_JSON_COMPAT_H
#define TRUTO_JSON_COMPAT_H

#include "json_cjson.h"
#include "json_scan.h"

/* tj_decode for a lua-cjson lacking caps->array_mt or caps->integers:
 * pushes the value and returns 1, pushes a message and returns 0, or
 * TJ_NOMEM (json.h). */
int tjc_decode(lua_State *L, const char *s, size_t len, const tj_opts *o, const tj_caps *caps);

#endif
