/* buf.c - growable byte buffer, see buf.h. */
#include "buf.h"

#include <stdlib.h>
#include <string.h>

void tbuf_init(tbuf *b)
{
    b->data = NULL;
    b->len = b->cap = 0;
    b->oom = 0;
}

void tbuf_free(tbuf *b)
{
    free(b->data);
    tbuf_init(b);
}

void tbuf_reset(tbuf *b)
{
    b->len = 0;
    b->oom = 0;
}

int tbuf_reserve(tbuf *b, size_t extra)
{
    if (b->oom)
        return 0;
    if (extra <= b->cap - b->len)
        return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > ((size_t)-1) / 2) {
            b->oom = 1;
            return 0;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) {
        b->oom = 1;
        return 0;
    }
    b->data = p;
    b->cap = cap;
    return 1;
}

void tbuf_add(tbuf *b, const void *p, size_t n)
{
    if (n == 0 || !tbuf_reserve(b, n))
        return;
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void tbuf_addc(tbuf *b, char c)
{
    if (!tbuf_reserve(b, 1))
        return;
    b->data[b->len++] = c;
}

void tbuf_adds(tbuf *b, const char *s)
{
    tbuf_add(b, s, strlen(s));
}
