/*
 * json_scan.h - the text scan that both decoding paths share: one pass
 * over the text, outside strings following enough of the JSON grammar to
 * know which tokens are values. Depending on the fields set it counts
 * values, rewrites number literals and empty arrays into strings, and
 * notes where the values are that json_compat.c must fix after lua-cjson
 * 2.1.0 decoded the text (the plan, json_plan.h). Output goes to out only
 * when something was rewritten (the return value: how many).
 */
#ifndef TRUTO_JSON_SCAN_H
#define TRUTO_JSON_SCAN_H

#include "buf.h"
#include "compat.h"

#define TJ_SCAN_DEPTH 1024 /* nesting the text scan follows (cjson stops at 1000) */

struct tj_plan;

typedef struct {
    /* asked for */
    int big_strings;      /* integer literals past 2^53 -> "digits" */
    size_t max_values;    /* 0: do not count */
    const char *marker;   /* json_compat.c: prefix of the marker strings */
    size_t marker_len;    /* 0: no markers */
    int mark_arrays;      /* [] -> [marker "a"] */
    int mark_numbers;     /* integers in (2^53, 2^63) -> marker "i" digits,
                             integral fraction/exponent literals -> marker "f" */
    struct tj_plan *plan; /* NULL, or where to note what needs fixing */
    /* found */
    size_t values; /* values counted (when max_values) */
    int too_many;  /* more than max_values: the scan stopped */
    int odd_bytes; /* a byte that a \u escape cannot produce (0xC0,
                      0xC1, 0xF5-0xFF) occurs in the text (looked for
                      only when something was rewritten) */
} tj_scan;

size_t tj_scan_text(const char *s, size_t len, tj_scan *sc, tbuf *out);

/* Pushes the message of a text refused by max_values. */
void tj_too_many(lua_State *L, size_t max);

/* Bytes no \u escape can produce in a decoded string (json_compat.c). */
#define TJ_IS_ODD_BYTE(c) ((c) == 0xC0 || (c) == 0xC1 || (c) >= 0xF5)

#endif
