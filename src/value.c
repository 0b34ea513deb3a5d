/* value.c - shapes, sorted keys and number formatting, see value.h. */
#include "value.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
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

/* ---- numbers in the "C" locale ---------------------------------------- */

static locale_t c_numeric;
static pthread_once_t c_numeric_once = PTHREAD_ONCE_INIT;

static void make_c_numeric(void)
{
    c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* The "C" numeric locale, or (locale_t)0 when it could not be made. */
static locale_t c_locale(void)
{
    pthread_once(&c_numeric_once, make_c_numeric);
    return c_numeric;
}

/* The current locale's decimal point when it is not ".", else NULL: the
 * fallback when no "C" locale object could be made. */
static const char *odd_decimal_point(void)
{
    const char *dp = localeconv()->decimal_point;
    return dp && strcmp(dp, ".") != 0 && *dp ? dp : NULL;
}

double tv_strtod(const char *s)
{
    locale_t c = c_locale();
    if (c)
        return strtod_l(s, NULL, c);
    const char *dp = odd_decimal_point();
    const char *dot = dp ? strchr(s, '.') : NULL;
    size_t len = strlen(s), k = dp ? strlen(dp) : 0;
    char tmp[128]; /* s with its '.' written as the locale's point */
    if (!dot || len + k >= sizeof tmp)
        return strtod(s, NULL);
    size_t head = (size_t)(dot - s);
    memcpy(tmp, s, head);
    memcpy(tmp + head, dp, k);
    size_t tail = len - head - 1;
    memcpy(tmp + head + k, dot + 1, tail);
    tmp[head + k + tail] = 0;
    return strtod(tmp, NULL);
}

void tv_c_numeric_enter(tv_c_numeric *c)
{
    locale_t loc = c_locale();
    c->old = loc ? uselocale(loc) : (locale_t)0;
}

void tv_c_numeric_leave(tv_c_numeric *c)
{
    if (c->old)
        uselocale(c->old);
}

int tv_format_double(char *out, size_t n, int precision, double d)
{
    if (c_locale()) {
        tv_c_numeric c;
        tv_c_numeric_enter(&c);
        int len = snprintf(out, n, "%.*g", precision, d);
        tv_c_numeric_leave(&c);
        return len;
    }
    int len = snprintf(out, n, "%.*g", precision, d);
    const char *dp = odd_decimal_point();
    char *at = dp && len > 0 ? strstr(out, dp) : NULL;
    if (at) { /* the locale's point back to '.' */
        size_t k = strlen(dp);
        *at = '.';
        memmove(at + 1, at + k, strlen(at + k) + 1);
        len -= (int)(k - 1);
    }
    return len;
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
        int len = tv_format_double(out, TV_NUMBUF, precision, d);
        if (tv_strtod(out) == d)
            return (size_t)len;
    }
    return (size_t)tv_format_double(out, TV_NUMBUF, 17, d);
}

int tv_is_null(lua_State *L, int idx)
{
    return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL;
}

const char *tv_typename(lua_State *L, int idx)
{
    return tv_is_null(L, idx) ? "null" : luaL_typename(L, idx);
}

/* ---- truto.int64 ------------------------------------------------------- */

void tv_push_int64(lua_State *L, long long v)
{
    long long *box = lua_newuserdatauv(L, sizeof *box, 0);
    *box = v;
    luaL_setmetatable(L, TRUTO_INT64_MT);
}

int tv_to_int64(lua_State *L, int idx, long long *v)
{
    long long *box = luaL_testudata(L, idx, TRUTO_INT64_MT);
    if (box)
        *v = *box;
    return box != NULL;
}

static long long check_int64(lua_State *L, int idx)
{
    return *(long long *)luaL_checkudata(L, idx, TRUTO_INT64_MT);
}

static int int64_tostring(lua_State *L)
{
    char num[TV_NUMBUF];
    snprintf(num, sizeof num, "%lld", check_int64(L, 1));
    lua_pushstring(L, num);
    return 1;
}

static int int64_eq(lua_State *L)
{
    long long a, b;
    lua_pushboolean(L, tv_to_int64(L, 1, &a) && tv_to_int64(L, 2, &b) && a == b);
    return 1;
}

static int int64_lt(lua_State *L)
{
    lua_pushboolean(L, check_int64(L, 1) < check_int64(L, 2));
    return 1;
}

static int int64_le(lua_State *L)
{
    lua_pushboolean(L, check_int64(L, 1) <= check_int64(L, 2));
    return 1;
}

static int int64_tonumber(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)check_int64(L, 1));
    return 1;
}

/* Digits (an optional '-', no blanks) in int64 range -> 1 and *v. */
static int parse_int64(const char *s, long long *v)
{
    const char *p = s + (*s == '-');
    if (!*p || strspn(p, "0123456789") != strlen(p))
        return 0;
    errno = 0;
    char *end;
    *v = strtoll(s, &end, 10);
    return errno == 0 && *end == 0;
}

int tv_int64_new(lua_State *L)
{
    long long v;
    if (lua_type(L, 1) == LUA_TSTRING) {
        if (!parse_int64(lua_tostring(L, 1), &v))
            return luaL_argerror(L, 1, "decimal digits of a 64-bit integer expected");
    } else {
        lua_Number d = luaL_checknumber(L, 1);
        if (!(d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return luaL_argerror(L, 1, "an integral number in the 64-bit range expected");
        v = (long long)d;
    }
    tv_push_int64(L, v);
    return 1;
}

void tv_register_int64(lua_State *L)
{
    static const luaL_Reg meta[] = {
        {"__tostring", int64_tostring},
        {"__eq", int64_eq},
        {"__lt", int64_lt},
        {"__le", int64_le},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TRUTO_INT64_MT)) {
        luaL_setfuncs(L, meta, 0);
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, int64_tonumber);
        lua_setfield(L, -2, "tonumber");
        lua_setfield(L, -2, "__index");
        lua_pushliteral(L, TRUTO_INT64_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}
