/* value.c - shapes, sorted keys and number formatting, see value.h. */
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

tv_shape tv_shape_of(lua_State *L, int idx, size_t *n)
{
    size_t strings = 0, integers = 0;
    lua_Integer max = 0;
    int bad = 0;

    idx = lua_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            lua_Number d = lua_tonumber(L, -1);
            if (d >= 1 && d < 9007199254740992.0 && d == floor(d)) {
                integers++;
                if ((lua_Integer)d > max)
                    max = (lua_Integer)d;
            } else {
                bad = 1;
            }
        } else {
            bad = 1;
        }
    }
    if (bad)
        return TV_BADKEY;
    if (strings && integers)
        return TV_MIXED;
    if (strings) {
        *n = strings;
        return TV_MAP;
    }
    if (!integers)
        return TV_EMPTY;
    *n = integers;
    return (size_t)max == integers ? TV_ARRAY : TV_SPARSE;
}

int tv_is_marked_array(lua_State *L, int idx)
{
    if (!lua_getmetatable(L, idx))
        return 0;
    luaL_getmetatable(L, TRUTO_ARRAY_MT);
    int marked = lua_rawequal(L, -1, -2);
    if (!marked) {
        lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_EMPTY_ARRAY_MT);
        marked = lua_rawequal(L, -1, -3);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return marked;
}

static int compare_keys(const void *a, const void *b)
{
    const tv_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    if (c)
        return c;
    return (x->len > y->len) - (x->len < y->len);
}

tv_key *tv_sorted_keys(lua_State *L, int idx, size_t n)
{
    idx = lua_absindex(L, idx);
    /* A userdata, so the garbage collector frees it even if a later
     * Lua error skips our cleanup. */
    tv_key *keys = lua_newuserdatauv(L, (n ? n : 1) * sizeof *keys, 0);
    size_t i = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (i < n && lua_type(L, -1) == LUA_TSTRING) {
            keys[i].s = lua_tolstring(L, -1, &keys[i].len);
            i++;
        }
    }
    qsort(keys, i, sizeof *keys, compare_keys);
    return keys;
}

size_t tv_format_number(lua_State *L, int idx, char *out)
{
    if (lua_isinteger(L, idx))
        return (size_t)snprintf(out, TV_NUMBUF, "%lld", (long long)lua_tointeger(L, idx));
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d) || isinf(d))
        return 0;
    /* [-2^63, 2^63) is exactly the range of a long long. */
    if (d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0)
        return (size_t)snprintf(out, TV_NUMBUF, "%lld", (long long)d);
    for (int precision = 15; precision <= 17; precision++) {
        int len = snprintf(out, TV_NUMBUF, "%.*g", precision, d);
        if (strtod(out, NULL) == d)
            return (size_t)len;
    }
    return (size_t)snprintf(out, TV_NUMBUF, "%.17g", d);
}

int tv_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

const char *tv_typename(lua_State *L, int idx)
{
    return tv_is_null(L, idx) ? "null" : luaL_typename(L, idx);
}
