/*
 * builder.h - turns fuzz bytes into one Lua value, for the encoders.
 *
 * Each value starts with an opcode byte (taken modulo 16):
 *    0 integer   int8 from the next byte
 *    1 boolean   next byte & 1
 *    2 integer   next 8 bytes, little-endian (any int64)
 *    3 integer   edge case: 0 1 -1 mininteger maxinteger 2^53 2^53+1 -(2^53+1)
 *    4 float     next 8 bytes as an IEEE double (NaN and infinities included)
 *    5 float     edge case: NaN inf -inf -0.0 0.5 1e300 2^63 -2^63 1.0 0.1 denormal 2^53+2
 *    6 string    length byte, then that many bytes (any bytes: NUL, CR, LF, bad UTF-8)
 *    7 array     count byte, then that many values
 *    8 map       count byte, then count x (string key as in 6, value)
 *    9 any-keyed count byte, then count x (key value, value): sparse, mixed, bad keys
 *   10 cycle     next byte picks a table under construction (an ancestor)
 *   11 chain     next byte % 64 levels of { a = ... } or { ... }, then the leaf value
 *   12 null      cjson.null
 *   13 marked    like 7, with the truto.array metatable (so count 0 is "[]")
 *   14 function  a C function: no encoding exists
 *   15 nil       (a hole in an array, a removed key in a map)
 * Building stops growing after FB_MAX_NODES values or FB_MAX_DEPTH levels:
 * further opcodes give leaves.
 */
#ifndef TRUTO_FUZZ_BUILDER_H
#define TRUTO_FUZZ_BUILDER_H

#include "fuzz.h"

#define FB_MAX_NODES 4096
#define FB_MAX_DEPTH 48

/* Pushes the value described by the bytes in r. */
void fb_push_value(lua_State *L, fz_reader *r);

#endif
