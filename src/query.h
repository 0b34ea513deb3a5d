/*
 * query.h - Lua params table -> Truto query string, and ids -> one path
 * segment. Pure functions: no I/O, no Lua errors for bad input (they
 * return 0 and describe the problem in err).
 *
 * Wire rules (shared/truto-api.md): bracket notation for nesting, "[]" for
 * arrays, map keys sorted bytewise, nil and empty tables omitted, every
 * byte outside A-Z a-z 0-9 - _ . ~ percent-encoded (brackets included).
 */
#ifndef TRUTO_QUERY_H
#define TRUTO_QUERY_H

#include "buf.h"
#include "compat.h"

#define TQ_MAX_DEPTH 16

/* Appends the encoding of the params table at idx to out ("a=1&b=2", no
 * leading '?'). On failure returns 0 and writes a message to err. */
int tq_encode(lua_State *L, int idx, tbuf *out, tbuf *err);

/* Appends the percent-encoding of s to out. */
void tq_escape(tbuf *out, const char *s, size_t len);

/* Appends the value at idx (non-empty string, or integral number) as one
 * escaped path segment. Returns 0 with a message in err otherwise. */
int tq_segment(lua_State *L, int idx, tbuf *out, tbuf *err);

#endif
