/*
 * json_compat.c - lua-cjson 2.1.0 made to decode like a current one; why
 * it exists and when to delete it: json_compat.h.
 *
 * How. Before cjson sees the text, the scan of json.c rewrites what 2.1.0
 * would lose into marker strings:
 *   []                               -> ["<P>a"]        (an empty array)
 *   integer literal in (2^53, 2^63)  -> "<P>i<digits>"  (exact integer)
 *   1.0, 2e3 (integral, in int64)    -> "<P>f<literal>" (stays a float)
 * and after decoding one walk puts the array metatable on every array,
 * turns integral floats into integers (Lua 5.3+) and markers back into
 * what they stand for.
 *
 * Why a marker cannot be forged. P is made only of bytes that no \u
 * escape can produce (0xC0, 0xC1, 0xF5-0xFF never occur in UTF-8, and
 * cjson writes escapes as UTF-8), so such a byte in a decoded string comes
 * from the same raw byte in the text, with the bytes next to it. P is
 * chosen per decode as a string of those bytes that does not occur in the
 * text at all: 0xFF alone unless the text has one of them inside a string
 * (invalid UTF-8 already), else the shortest absent one. So no string the
 * server sent contains P, and every decoded string that starts with P is
 * ours: a collision is impossible, not unlikely.
 */
#include "json_compat.h"
#include "value.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MARKER 16

static const unsigned char odd_bytes[] = {0xC0, 0xC1, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9,
                                          0xFA, 0xFB, 0xFC, 0xFD, 0xFE, 0xFF};
#define ODD_COUNT (sizeof odd_bytes)

static int odd_index(unsigned char c)
{
    if (c == 0xC0 || c == 0xC1)
        return c - 0xC0;
    if (c >= 0xF5)
        return c - 0xF5 + 2;
    return -1;
}

/*
 * Writes to p the shortest string of odd bytes that occurs nowhere in the
 * text and returns its length (0: out of memory). There are 13^k strings of
 * length k and at most len of them occur, so one of length k exists as soon
 * as 13^k > len: the loop ends by k = 8 for any text under 800 GB.
 */
static size_t absent_marker(const unsigned char *s, size_t len, unsigned char *p)
{
    size_t space = 1;
    for (size_t k = 1; k < MAX_MARKER; k++) {
        space *= ODD_COUNT;
        unsigned char *seen = calloc(space / 8 + 1, 1);
        if (!seen)
            return 0;
        size_t code = 0, run = 0;
        for (size_t i = 0; i < len; i++) {
            int d = odd_index(s[i]);
            if (d < 0) {
                run = 0;
                continue;
            }
            code = (code * ODD_COUNT + (size_t)d) % space;
            if (++run >= k)
                seen[code / 8] |= (unsigned char)(1u << (code % 8));
        }
        for (size_t c = 0; c < space; c++) {
            if (seen[c / 8] & (1u << (c % 8)))
                continue;
            for (size_t i = k; i-- > 0; c /= ODD_COUNT)
                p[i] = odd_bytes[c % ODD_COUNT];
            free(seen);
            return k;
        }
        free(seen);
    }
    return 0;
}

typedef struct {
    const char *marker; /* NULL when no marker was written */
    size_t marker_len;
    int mark_arrays; /* set the array metatable (cjson does not) */
    int integers;    /* turn integral floats into integers */
    int mt;          /* stack index of the array metatable */
    int boxes;       /* integer markers -> truto.int64 (no integer type) */
} walk;

static int is_marker(lua_State *L, const walk *w, char kind)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    return len > w->marker_len && memcmp(s, w->marker, w->marker_len) == 0 &&
           s[w->marker_len] == kind;
}

/* The number on top as an integer when it is integral and fits; returns
 * whether it replaced it. */
static int to_integer(lua_State *L)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, -1))
        return 0;
    lua_Number d = lua_tonumber(L, -1);
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
        return 0;
    lua_Integer i = (lua_Integer)d;
    if ((lua_Number)i != d)
        return 0;
    lua_pop(L, 1);
    lua_pushinteger(L, i);
    return 1;
#else
    (void)L;
    return 0;
#endif
}

/* A number marker on top replaced by its number (markers of numbers are
 * only written where the runtime has integers). */
static int from_marker(lua_State *L, const walk *w)
{
#if LUA_VERSION_NUM >= 503
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len <= w->marker_len + 1 || s[0] != w->marker[0] ||
        memcmp(s, w->marker, w->marker_len) != 0)
        return 0;
    char kind = s[w->marker_len];
    if ((kind != 'i' && kind != 'f') || !lua_stringtonumber(L, s + w->marker_len + 1))
        return 0;
    lua_remove(L, -2);
    return 1;
#else
    /* No integers: an integer marker is a truto.int64 when asked for, a
     * float marker the number of its literal. */
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len <= w->marker_len + 1 || memcmp(s, w->marker, w->marker_len) != 0)
        return 0;
    char kind = s[w->marker_len];
    const char *literal = s + w->marker_len + 1;
    if (kind == 'i' && w->boxes) {
        errno = 0;
        long long v = strtoll(literal, NULL, 10);
        if (errno)
            return 0;
        tv_push_int64(L, v);
    } else if (kind == 'i' || kind == 'f') {
        lua_pushnumber(L, (lua_Number)tv_strtod(literal));
    } else {
        return 0;
    }
    lua_remove(L, -2);
    return 1;
#endif
}

static int visit(lua_State *L, const walk *w, int depth);

static void walk_table(lua_State *L, const walk *w, int depth)
{
    if (depth > 1000)
        return; /* cjson refuses deeper documents anyway */
    luaL_checkstack(L, 6, "JSON nested too deeply");
    int t = lua_gettop(L);
    size_t n = (size_t)lua_rawlen(L, t);
    if (n > 0) {
        /* 2.1.0 gives objects string keys only: a table with t[1] is an array */
        if (w->mark_arrays) {
            lua_pushvalue(L, w->mt);
            lua_setmetatable(L, t);
            if (n == 1 && w->marker) {
                lua_rawgeti(L, t, 1);
                int empty = lua_type(L, -1) == LUA_TSTRING && is_marker(L, w, 'a');
                lua_pop(L, 1);
                if (empty) {
                    lua_pushnil(L);
                    lua_rawseti(L, t, 1);
                    return;
                }
            }
        }
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, t, (lua_Integer)i);
            if (visit(L, w, depth))
                lua_rawseti(L, t, (lua_Integer)i);
            else
                lua_pop(L, 1);
        }
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (visit(L, w, depth)) {
            lua_pushvalue(L, -2); /* key value key */
            lua_insert(L, -2);    /* key key value */
            lua_rawset(L, t);     /* assigning an existing key is safe in next() */
        } else {
            lua_pop(L, 1);
        }
    }
}

/* Fixes the value on top; returns 1 when it was replaced by a new value
 * (tables are changed in place). */
static int visit(lua_State *L, const walk *w, int depth)
{
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        return w->integers && to_integer(L);
    case LUA_TSTRING:
        return w->marker && from_marker(L, w);
    case LUA_TTABLE:
        walk_table(L, w, depth + 1);
        return 0;
    default:
        return 0;
    }
}

int tjc_decode(lua_State *L, const char *s, size_t len, const tj_opts *o, const tj_caps *caps)
{
    unsigned char marker[MAX_MARKER] = {0xFF};
    tj_scan sc;
    memset(&sc, 0, sizeof sc);
    sc.big_strings = o->big_strings;
    sc.max_values = o->max_values && len > o->max_values ? o->max_values : 0;
    sc.mark_arrays = !caps->array_mt;
    sc.mark_numbers = !caps->integers || o->big_boxes;
    sc.marker = (const char *)marker;
    sc.marker_len = 1;

    tbuf text;
    tbuf_init(&text);
    size_t edits = tj_scan_text(s, len, &sc, &text);
    if (edits && sc.odd_bytes) {
        /* 0xFF might be in a string: take a marker the text lacks, again */
        sc.marker_len = absent_marker((const unsigned char *)s, len, marker);
        tbuf_reset(&text);
        edits = sc.marker_len ? tj_scan_text(s, len, &sc, &text) : 0;
        if (!sc.marker_len)
            text.oom = 1;
    }
    int ok;
    if (sc.too_many) {
        tj_too_many(L, o->max_values);
        ok = 0;
    } else if (text.oom) {
        lua_pushliteral(L, "not enough memory");
        ok = TJ_NOMEM;
    } else {
        ok = edits ? tj_run_decode(L, text.data, text.len, 0)
                   : tj_run_decode(L, s, len, o->text_idx);
    }
    tbuf_free(&text);
    if (ok != 1)
        return ok;

    walk w;
    w.marker = edits ? (const char *)marker : NULL;
    w.marker_len = sc.marker_len;
    w.mark_arrays = !caps->array_mt;
    w.integers = !caps->integers;
    w.boxes = o->big_boxes;
    if (!w.mark_arrays && !w.integers && !w.marker)
        return 1;
    luaL_getmetatable(L, TRUTO_ARRAY_MT);
    w.mt = lua_gettop(L);
    lua_insert(L, -2); /* mt value */
    w.mt = lua_gettop(L) - 1;
    visit(L, &w, 0);
    lua_remove(L, w.mt);
    return 1;
}
