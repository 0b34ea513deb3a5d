/*
 * json_compat.c - lua-cjson 2.1.0 made to decode like a current one; why
 * it exists and when to delete it: json_compat.h.
 *
 * How. Before cjson sees the text, the scan of json.c rewrites what 2.1.0
 * would lose into marker strings:
 *   []                               -> ["<P>a"]        (an empty array)
 *   integer literal in (2^53, 2^63)  -> "<P>i<digits>"  (exact integer)
 *   1.0, 2e3 (integral, in int64)    -> "<P>f<literal>" (stays a float)
 * and after decoding the fix-ups, where the scan's plan says (json_plan.h),
 * put the array metatable on every array, turn integral floats into
 * integers (Lua 5.3+) and markers back into what they stand for.
 *
 * Why a marker cannot be forged. P is made only of bytes that no \u
 * escape can produce (0xC0, 0xC1, 0xF5-0xFF never occur in UTF-8, and
 * cjson writes escapes as UTF-8), so such a byte in a decoded string comes
 * from the same raw byte in the text, with the bytes next to it. P is
 * chosen per decode as a string of those bytes that does not occur in the
 * text at all: 0xFF alone unless the text has one of them anywhere
 * (invalid UTF-8 already), else the shortest absent one. So no string the
 * server sent contains P, and every decoded string that starts with P is
 * ours: a collision is impossible, not unlikely.
 */
#include "json_compat.h"
#include "json_cjson.h"
#include "json_plan.h"
#include "json_scan.h"
#include "value.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MARKER 16
#define KEY_SLOTS 64 /* object keys of the plan kept as Lua strings during one fix-up */

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
    int mark_arrays;     /* set the array metatable (cjson does not) */
    int integers;        /* turn integral floats into integers */
    int mt;              /* stack index of the array metatable */
    int boxes;           /* integer markers -> truto.int64 (no integer type) */
    const tj_plan *plan; /* where the scan found work, or NULL: visit every value */
    size_t len;          /* the length of the table fits_node looked at last */
    int keys;            /* stack index of the first of KEY_SLOTS slots: object keys
                            already made, so each is made once per text */
    struct {
        size_t at, len; /* where the key in the slot is in the text (len 0: none) */
    } key[KEY_SLOTS];
} walk;

static int is_marker(lua_State *L, const walk *w, char kind)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    return len > w->marker_len && memcmp(s, w->marker, w->marker_len) == 0 &&
           s[w->marker_len] == kind;
}

/* The number on top as an integer when it is integral and fits; returns
 * whether it replaced it (never where the runtime has no integers). */
static int to_integer(lua_State *L)
{
    if (!COMPAT_INTEGERS || lua_isinteger(L, -1))
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
}

/* A number marker on top replaced by its number: an integer marker by the
 * integer (a truto.int64 where the runtime has no integers and one was
 * asked for, else the double), a float marker by the number of its literal. */
static int from_marker(lua_State *L, const walk *w)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    if (len <= w->marker_len + 1 || s[0] != w->marker[0] ||
        memcmp(s, w->marker, w->marker_len) != 0)
        return 0;
    char kind = s[w->marker_len];
    const char *literal = s + w->marker_len + 1;
    if (kind == 'i' && (COMPAT_INTEGERS || w->boxes)) {
        errno = 0;
        long long v = strtoll(literal, NULL, 10);
        if (errno)
            return 0;
        if (COMPAT_INTEGERS)
            lua_pushinteger(L, (lua_Integer)v);
        else
            tv_push_int64(L, v);
    } else if (kind == 'i' || kind == 'f') {
        lua_pushnumber(L, (lua_Number)tv_strtod(literal));
    } else {
        return 0;
    }
    lua_remove(L, -2);
    return 1;
}

/* Gives the table at t (of n elements) the array metatable; an array whose one
 * element is the empty-array marker becomes the empty array it stood for.
 * Returns 1 when it was that marker (nothing left to walk). */
static int mark_array(lua_State *L, const walk *w, int t, size_t n)
{
    lua_pushvalue(L, w->mt);
    lua_setmetatable(L, t);
    if (n != 1 || !w->marker)
        return 0;
    lua_rawgeti(L, t, 1);
    int empty = lua_type(L, -1) == LUA_TSTRING && is_marker(L, w, 'a');
    lua_pop(L, 1);
    if (empty) {
        lua_pushnil(L);
        lua_rawseti(L, t, 1);
    }
    return empty;
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
        if (w->mark_arrays && mark_array(L, w, t, n))
            return;
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

/* ---- the fix-up where the plan says ----------------------------------- */

static void walk_node(lua_State *L, walk *w, int node, int depth);

/* Whether the table on top has the shape of the plan's node (2.1.0 gives
 * objects string keys only: a table with t[1] is an array). */
static int fits_node(lua_State *L, walk *w, int node)
{
    if (node < 0 || (size_t)node >= w->plan->n_nodes || lua_type(L, -1) != LUA_TTABLE)
        return 0;
    w->len = (size_t)lua_rawlen(L, -1);
    return (w->plan->nodes[node].kind == '[') == (w->len > 0);
}

/* Fixes the value on top as its entry says; returns 1 when it was replaced. */
static int fix_entry(lua_State *L, walk *w, const tj_entry *e, int depth)
{
    if (e->node >= 0 && fits_node(L, w, e->node)) {
        walk_node(L, w, e->node, depth + 1);
        return 0;
    }
    return visit(L, w, depth); /* a scalar, or not what the plan expected */
}

static void walk_array_node(lua_State *L, walk *w, const tj_node *nd, int depth)
{
    int t = lua_gettop(L);
    size_t n = w->len; /* fits_node's, just before */
    if (mark_array(L, w, t, n))
        return;
    for (int k = nd->first; k >= 0; k = w->plan->list[k].next) {
        const tj_entry *e = &w->plan->list[k];
        if (e->index < 1 || e->index > n)
            continue;
        lua_rawgeti(L, t, (lua_Integer)e->index);
        if (fix_entry(L, w, e, depth))
            lua_rawseti(L, t, (lua_Integer)e->index);
        else
            lua_pop(L, 1);
    }
}

/* Pushes the key of the object entry e. The same few keys come back in
 * every item of a page: each is made a Lua string once, then copied. */
static void push_key(lua_State *L, walk *w, const tj_entry *e)
{
    const char *k = (const char *)w->plan->text + e->key;
    size_t n = e->key_len;
    unsigned h =
        n ? ((unsigned)n * 31u + (unsigned char)k[0] * 7u + (unsigned char)k[n - 1]) % KEY_SLOTS
          : 0;
    if (w->key[h].len == n && n > 0 &&
        memcmp((const char *)w->plan->text + w->key[h].at, k, n) == 0) {
        lua_pushvalue(L, w->keys + (int)h);
        return;
    }
    lua_pushlstring(L, k, n);
    if (n > 0) {
        lua_pushvalue(L, -1);
        lua_replace(L, w->keys + (int)h);
        w->key[h].at = e->key;
        w->key[h].len = n;
    }
}

static void walk_object_node(lua_State *L, walk *w, const tj_node *nd, int depth)
{
    int t = lua_gettop(L);
    for (int k = nd->first; k >= 0; k = w->plan->list[k].next) {
        const tj_entry *e = &w->plan->list[k];
        if (e->node == TJ_PLAN_DEAD)
            continue;
        /* a container is changed in place: its key is needed once, unless
         * the plan was wrong about it and it was a number after all */
        int scalar = e->node < 0;
        push_key(L, w, e);
        if (scalar)
            lua_pushvalue(L, -1);
        lua_rawget(L, t); /* [key] value */
        if (fix_entry(L, w, e, depth)) {
            if (!scalar) {
                push_key(L, w, e);
                lua_insert(L, -2);
            }
            lua_rawset(L, t);
        } else {
            lua_pop(L, scalar ? 2 : 1);
        }
    }
}

/* Fixes the table on top (of the node's shape) where the plan says. */
static void walk_node(lua_State *L, walk *w, int node, int depth)
{
    const tj_node *nd = &w->plan->nodes[node];
    if (depth > 1000)
        return;          /* cjson refuses deeper documents anyway */
    if (depth % 16 == 0) /* room for 16 levels at a time (fix_up made it for the first) */
        luaL_checkstack(L, 6 * 16, "JSON nested too deeply");
    if (nd->full)
        walk_table(L, w, depth);
    else if (nd->kind == '[')
        walk_array_node(L, w, nd, depth);
    else
        walk_object_node(L, w, nd, depth);
}

/* ---- decoding ---------------------------------------------------------- */

/* Scans the text (markers, counting, the plan) and runs lua-cjson once on
 * it: 1 with the value pushed, 0 with a message, TJ_NOMEM. *edits: whether
 * markers were written. */
static int scan_and_decode(lua_State *L, const char *s, size_t len, const tj_opts *o, tj_scan *sc,
                           int *edits)
{
    tbuf text;
    tbuf_init(&text);
    *edits = tj_scan_text(s, len, sc, &text) > 0;
    if (*edits && sc->odd_bytes) {
        /* 0xFF might be in a string: take a marker the text lacks, again */
        unsigned char *marker = (unsigned char *)(uintptr_t)sc->marker;
        sc->marker_len = absent_marker((const unsigned char *)s, len, marker);
        tbuf_reset(&text);
        if (sc->plan)
            tj_plan_free(sc->plan), tj_plan_init(sc->plan, s, len, sc->plan->numbers);
        *edits = sc->marker_len ? tj_scan_text(s, len, sc, &text) > 0 : 0;
        if (!sc->marker_len)
            text.oom = 1;
    }
    int ok;
    if (sc->too_many) {
        tj_too_many(L, o->max_values);
        ok = 0;
    } else if (text.oom) {
        lua_pushliteral(L, "not enough memory");
        ok = TJ_NOMEM;
    } else {
        ok = *edits ? tj_cjson_decode(L, text.data, text.len, 0)
                    : tj_cjson_decode(L, s, len, o->text_idx);
    }
    tbuf_free(&text);
    return ok;
}

/* The fix-ups of the decoded value on top. */
static void fix_up(lua_State *L, walk *w)
{
    int v = lua_gettop(L);
    luaL_checkstack(L, KEY_SLOTS + 8 + 6 * 16, "JSON nested too deeply");
    luaL_getmetatable(L, TRUTO_ARRAY_MT);
    w->mt = v + 1;
    w->keys = v + 2;
    lua_settop(L, v + 1 + KEY_SLOTS);
    for (int k = 0; k < KEY_SLOTS; k++)
        w->key[k].len = 0;
    lua_pushvalue(L, v);
    if (w->plan && fits_node(L, w, 0))
        walk_node(L, w, 0, 1);
    else if (visit(L, w, 0))
        lua_replace(L, v); /* the document itself was a number or a marker */
    lua_settop(L, v);
}

int tjc_decode(lua_State *L, const char *s, size_t len, const tj_opts *o, const tj_caps *caps)
{
    unsigned char marker[MAX_MARKER] = {0xFF};
    tj_plan plan;
    tj_plan_init(&plan, s, len, !caps->integers);
    tj_scan sc;
    memset(&sc, 0, sizeof sc);
    sc.big_strings = o->big_strings;
    sc.max_values = o->max_values && len > o->max_values ? o->max_values : 0;
    sc.mark_arrays = !caps->array_mt;
    sc.mark_numbers = !caps->integers || o->big_boxes;
    sc.marker = (const char *)marker;
    sc.marker_len = 1;
    sc.plan = &plan;

    int edits;
    int ok = scan_and_decode(L, s, len, o, &sc, &edits);
    walk w;
    w.marker = edits ? (const char *)marker : NULL;
    w.marker_len = sc.marker_len;
    w.mark_arrays = !caps->array_mt;
    w.integers = !caps->integers;
    w.boxes = o->big_boxes;
    w.plan = plan.broken ? NULL : &plan;
    if (ok == 1 && (w.mark_arrays || w.integers || w.marker))
        fix_up(L, &w);
    tj_plan_free(&plan);
    return ok;
}
