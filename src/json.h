/*
 * json.h - JSON in and out of lua-truto.
 *
 * Encoding (request bodies, truto.encode_json) is done here: strict, keys
 * sorted, 64-bit integers exact, and a table carrying the array metatable
 * (truto.array(), or any array lua-cjson decoded) written as an array, so
 * an empty one stays `[]`.
 *
 * Decoding is lua-cjson's job, through a private cjson.new() instance. What
 * that lua-cjson can do is found out once, when the module loads, by trying
 * it (never from its _VERSION):
 *   array_mt  - decode_array_with_array_mt(true) marks every decoded array
 *               with cjson.array_mt (openresty lua-cjson 2.1.0.10 and later);
 *   integers  - integral literals come back as Lua integers, exact to 2^63
 *               (2.1.0.14 and later; always true on Lua 5.1 and LuaJIT,
 *               which have no integer type to get wrong).
 * With both, the decoded value is lua-cjson's, untouched. Without either
 * (Debian 12's 2.1.0), json_compat.c gives the same values.
 *
 * The files, each calling only those below it (no circle):
 *   json_encode.c  the encoder
 *   json_decode.c  tj_decode: the checks of the text, then one of two paths:
 *                  lua-cjson as it is, or json_compat.c (once per text)
 *   json_compat.c  the Debian 2.1.0 layer: scan with markers, one decode,
 *                  the fix-ups where the scan found something to fix
 *   json_scan.c    the text scan (counting, rewriting, the fix-up plan)
 *   json_cjson.c   the bridge: the private instance, its capabilities, and
 *                  one protected call of its decode
 *
 * Two options work on every lua-cjson and runtime, by looking at the text
 * before lua-cjson does (only when they are asked for):
 *   big_integers = "string"  integer literals a double cannot carry exactly
 *                            (|n| > 2^53) come back as their decimal digits;
 *   max_values = n           a text of more than n JSON values (every
 *                            scalar, array and object counts one) is
 *                            refused before it is decoded.
 */
#ifndef TRUTO_JSON_H
#define TRUTO_JSON_H

#include "buf.h"
#include "compat.h"

#define TJ_MAX_DEPTH 32

/* Strict encoding of the value at idx; 0 with a message in err on failure,
 * naming where the value that could not be encoded is: "a.b[2]: array has
 * holes", or with root "body": "body.a.b[2]: array has holes". */
int tj_encode(lua_State *L, int idx, tbuf *out, tbuf *err);
int tj_encode_named(lua_State *L, int idx, const char *root, tbuf *out, tbuf *err);

/*
 * At module load: requires cjson, makes the private instance, finds its
 * capabilities, and registers the array metatable under TRUTO_ARRAY_MT
 * (value.h): cjson.array_mt when lua-cjson has one, else a table of ours.
 */
void tj_init(lua_State *L);

/* core.json_info() -> { array_mt = bool, integers = bool, compat = bool }:
 * what lua-cjson can do, and whether json_compat.c decodes. */
int tj_info(lua_State *L);

/* Decoding options: opts = { big_integers = "string" | "int64" | "number" | nil,
 * max_values = n | nil } ("number", the default: numbers as lua-cjson gives them). */
typedef struct {
    int big_strings;   /* big_integers = "string" */
    int big_boxes;     /* big_integers = "int64" on a Lua without integers: truto.int64 */
    size_t max_values; /* 0: no bound */
    int text_idx;      /* stack index of a Lua string that is the text, or 0: lua-cjson
                          then gets that string, not a copy */
} tj_opts;

/* Reads the options table at idx (nil or none: defaults). Raises a misuse
 * error naming argument idx when a field is wrong. */
void tj_opts_check(lua_State *L, int idx, tj_opts *o);

/*
 * Decodes the JSON text [s, s+len). Pushes the value and returns 1, or
 * pushes a message and returns 0. Never raises for bad text: bytes after
 * the document (a NUL included) are bad text. Raises Lua's memory error
 * when memory runs out (not a fault of the text).
 */
int tj_decode(lua_State *L, const char *s, size_t len, const tj_opts *o);

#endif
