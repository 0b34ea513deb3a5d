/*
 * buf.h - a growable byte buffer owned by C.
 *
 * luaL_Buffer lives on the Lua stack and cannot outlive one C call or be
 * filled from a libcurl callback; tbuf can. Every append checks for
 * allocation failure and remembers it, so callers test once at the end.
 */
#ifndef TRUTO_BUF_H
#define TRUTO_BUF_H

#include <stddef.h>

typedef struct tbuf {
    char *data;
    size_t len;
    size_t cap;
    int oom; /* an allocation failed; contents are incomplete */
} tbuf;

void tbuf_init(tbuf *b);
void tbuf_free(tbuf *b);
void tbuf_reset(tbuf *b); /* length 0, keeps the allocation */
int tbuf_reserve(tbuf *b, size_t extra);
void tbuf_add(tbuf *b, const void *p, size_t n);
void tbuf_addc(tbuf *b, char c);
void tbuf_adds(tbuf *b, const char *s);

#endif
