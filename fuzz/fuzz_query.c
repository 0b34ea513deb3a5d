/*
 * fuzz_query.c - tq_encode (params table -> query string) and tq_segment
 * (id -> path segment) on values built from the input (builder.h).
 *
 * Invariants:
 *   - success: only A-Z a-z 0-9 - _ . ~ % = & in the output, every % starts
 *     %XX with upper-case hex, and every &-separated pair is "key=value"
 *     with a non-empty key and exactly one '=';
 *   - the same value encodes to the same bytes twice;
 *   - failure: a non-empty message;
 *   - the Lua stack is left as it was;
 *   - a segment is non-empty and escaped: no '/', '?', '#', ' ' and the
 *     escape decodes back to the id.
 */
#include "builder.h"
#include "fuzz.h"

#include "../src/buf.h"
#include "../src/query.h"

#include <string.h>

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

static int is_upper_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hex_value(unsigned char c)
{
    return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* Checks that [s, s+len) is unreserved bytes and %XX escapes; extra lists
 * other bytes allowed raw. Writes the decoded bytes to out if not NULL. */
static void check_escaped(const char *s, size_t len, const char *extra, tbuf *out)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            FZ_CHECK(i + 2 < len, "'%%' at %zu is not followed by two hex digits", i);
            FZ_CHECK(is_upper_hex((unsigned char)s[i + 1]) && is_upper_hex((unsigned char)s[i + 2]),
                     "bad escape %%%c%c at %zu", s[i + 1], s[i + 2], i);
            if (out)
                tbuf_addc(out, (char)(hex_value((unsigned char)s[i + 1]) * 16 +
                                      hex_value((unsigned char)s[i + 2])));
            i += 2;
        } else {
            FZ_CHECK(is_unreserved(c) || (c && strchr(extra, c)), "byte 0x%02x at %zu not escaped",
                     c, i);
            if (out)
                tbuf_addc(out, (char)c);
        }
    }
}

/* Every pair is key=value with a non-empty key. */
static void check_pairs(const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && s[i] != '&')
            continue;
        const char *pair = s + start;
        size_t n = i - start;
        const char *eq = memchr(pair, '=', n);
        FZ_CHECK(eq && eq > pair, "pair at %zu has no key", start);
        FZ_CHECK(!memchr(eq + 1, '=', n - (size_t)(eq + 1 - pair)), "pair at %zu has two '='",
                 start);
        start = i + 1;
    }
}

static void check_encode(lua_State *L)
{
    tbuf out, again, err;
    tbuf_init(&out);
    tbuf_init(&again);
    tbuf_init(&err);
    FZ_KEEP_TOP(L);
    int ok = tq_encode(L, -1, &out, &err);
    FZ_SAME_TOP(L, "tq_encode");
    if (ok) {
        check_escaped(out.data, out.len, "=&", NULL);
        if (out.len)
            check_pairs(out.data, out.len);
        FZ_CHECK(tq_encode(L, -1, &again, &err), "second encoding failed");
        FZ_CHECK(again.len == out.len && (!out.len || memcmp(again.data, out.data, out.len) == 0),
                 "encoding is not deterministic");
    } else {
        FZ_CHECK(err.len > 0, "tq_encode failed with an empty message");
        FZ_CHECK(!out.oom, "out of memory on a small input");
    }
    tbuf_free(&out);
    tbuf_free(&again);
    tbuf_free(&err);
}

/* Segments: the escape of a string id decodes back to it. */
static void check_segment(lua_State *L)
{
    tbuf out, err, decoded;
    tbuf_init(&out);
    tbuf_init(&err);
    tbuf_init(&decoded);
    int t = lua_type(L, -1);
    FZ_KEEP_TOP(L);
    int ok = tq_segment(L, -1, &out, &err);
    FZ_SAME_TOP(L, "tq_segment");
    if (ok) {
        FZ_CHECK(out.len > 0, "empty segment");
        check_escaped(out.data, out.len, "", &decoded);
        if (t == LUA_TSTRING) {
            size_t len;
            const char *s = lua_tolstring(L, -1, &len);
            FZ_CHECK(decoded.len == len && memcmp(decoded.data, s, len) == 0,
                     "segment does not decode back to the id");
        }
    } else {
        FZ_CHECK(err.len > 0, "tq_segment failed with an empty message");
        FZ_CHECK(t != LUA_TSTRING || lua_rawlen(L, -1) == 0, "non-empty string id refused");
    }
    tbuf_free(&out);
    tbuf_free(&err);
    tbuf_free(&decoded);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    fz_reader r = {data, size};

    /* The whole input as one id, then the built value as params and id. */
    lua_pushlstring(L, (const char *)data, size);
    check_segment(L);
    lua_pop(L, 1);

    fb_push_value(L, &r);
    check_encode(L);
    check_segment(L);
    fz_reset(L);
    return 0;
}
