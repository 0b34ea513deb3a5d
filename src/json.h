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
#define TJ_SCAN_DEPTH 1024 /* nesting the text scan follows (cjson stops at 1000) */

/* Registry keys set by tj_init. */
#define TRUTO_DECODE "truto.cjson.decode"           /* the private instance's decode */
#define TRUTO_EMPTY_ARRAY "truto.cjson.empty_array" /* cjson.empty_array, if any */

/* Strict encoding of the value at idx; 0 with a message in err on failure,
 * naming where the value that could not be encoded is: "a.b[2]: array has
 * holes", or with root "body": "body.a.b[2]: array has holes". */
int tj_encode(lua_State *L, int idx, tbuf *out, tbuf *err);
int tj_encode_named(lua_State *L, int idx, const char *root, tbuf *out, tbuf *err);

/* What lua-cjson can do, found by tj_init. */
typedef struct {
    int array_mt; /* decoded arrays carry cjson.array_mt */
    int integers; /* integral literals decode to exact Lua integers */
} tj_caps;

/*
 * At module load: requires cjson, makes the private instance, finds its
 * capabilities, and registers the array metatable under TRUTO_ARRAY_MT
 * (value.h): cjson.array_mt when lua-cjson has one, else a table of ours.
 */
void tj_init(lua_State *L);
const tj_caps *tj_capabilities(lua_State *L);

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

/* Returned by the decoding steps below when memory ran out (the memory
 * error on the stack); tj_decode raises it. */
#define TJ_NOMEM (-1)

/* For json_compat.c: runs the private decode on [s, s+len), or on the Lua
 * string at idx when idx is not 0 (1: value pushed, 0: message pushed,
 * TJ_NOMEM), and pushes the max_values message. */
int tj_run_decode(lua_State *L, const char *s, size_t len, int idx);
void tj_too_many(lua_State *L, size_t max);

/*
 * The text scan that both decoding paths share: one pass over the text,
 * outside strings following enough of the JSON grammar to know which
 * tokens are values. Depending on the fields set it counts values, and
 * rewrites number literals and empty arrays into strings. Output goes to
 * out only when something was rewritten (the return value: how many).
 */
typedef struct {
    /* asked for */
    int big_strings;    /* integer literals past 2^53 -> "digits" */
    size_t max_values;  /* 0: do not count */
    const char *marker; /* json_compat.c: prefix of the marker strings */
    size_t marker_len;  /* 0: no markers */
    int mark_arrays;    /* [] -> [marker "a"] */
    int mark_numbers;   /* integers in (2^53, 2^63) -> marker "i" digits,
                              integral fraction/exponent literals -> marker "f" */
    /* found */
    size_t values; /* values counted (when max_values) */
    int too_many;  /* more than max_values: the scan stopped */
    int odd_bytes; /* a byte that a \u escape cannot produce (0xC0,
                              0xC1, 0xF5-0xFF) occurs inside a string */
} tj_scan;

size_t tj_scan_text(const char *s, size_t len, tj_scan *sc, tbuf *out);

/* Bytes no \u escape can produce in a decoded string (json_compat.c). */
#define TJ_IS_ODD_BYTE(c) ((c) == 0xC0 || (c) == 0xC1 || (c) >= 0xF5)

#endif
