/*
 * json_cjson.h - the bridge to lua-cjson: the private cjson.new() instance
 * made by tj_init (json.h), what that lua-cjson can do, and one protected
 * call of its decode. The bottom of the JSON files: it calls none of them.
 */
#ifndef TRUTO_JSON_CJSON_H
#define TRUTO_JSON_CJSON_H

#include "json.h"

/* Registry keys set by tj_init. */
#define TRUTO_DECODE "truto.cjson.decode"           /* the private instance's decode */
#define TRUTO_EMPTY_ARRAY "truto.cjson.empty_array" /* cjson.empty_array, if any */

/* What lua-cjson can do, found by tj_init (by trying it, never from _VERSION). */
typedef struct {
    int array_mt; /* decoded arrays carry cjson.array_mt */
    int integers; /* integral literals decode to exact Lua integers */
} tj_caps;

const tj_caps *tj_capabilities(lua_State *L);

/* Returned by the decoding steps when memory ran out (the memory error on
 * the stack); tj_decode raises it. */
#define TJ_NOMEM (-1)

/* Runs the private decode on [s, s+len), or on the Lua string at idx when
 * idx is not 0: 1 with the value pushed, 0 with cjson's message pushed, or
 * TJ_NOMEM. */
int tj_cjson_decode(lua_State *L, const char *s, size_t len, int idx);

#endif
