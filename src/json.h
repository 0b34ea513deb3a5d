/*
 * json.h - the JSON work lua-cjson 2.1.0 (Debian) cannot do for us.
 *
 * Decoding is lua-cjson's job. It hands back every number as a float on
 * Lua 5.4 and rounds integers past 2^53, so:
 *   tj_protect_bigints  rewrites such integer literals into marker strings
 *                       before cjson sees the text, and
 *   tj_normalize        turns integral floats, and those markers, into Lua
 *                       integers after decoding.
 * Encoding request bodies is done here because cjson 2.1.0 cannot write an
 * empty array, silently accepts sparse arrays, and rounds 64-bit integers.
 */
#ifndef TRUTO_JSON_H
#define TRUTO_JSON_H

#include "buf.h"
#include "compat.h"

#define TJ_MAX_DEPTH 32
#define TJ_SCAN_DEPTH 1024 /* nesting tj_protect_bigints follows (cjson stops at 1000) */

/* Strict encoding of the value at idx; 0 with a message in err on failure. */
int tj_encode(lua_State *L, int idx, tbuf *out, tbuf *err);

/*
 * If text holds integer literals that a double cannot carry exactly, writes
 * a copy of text to out with each one replaced by a marker string, and
 * returns 1. Returns 0 (out untouched) when there is nothing to protect.
 */
int tj_protect_bigints(const char *text, size_t len, tbuf *out);

/* Recursively converts numbers in the decoded value at idx (see above);
 * markers says whether tj_protect_bigints rewrote the text. */
void tj_normalize(lua_State *L, int idx, int markers);

#endif
