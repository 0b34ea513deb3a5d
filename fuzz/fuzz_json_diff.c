/*
 * fuzz_json_diff.c - the two decoding paths against each other and against
 * strict_json.c, on the same text.
 *
 * Two Lua states load the same core: one with Debian's lua-cjson 2.1.0
 * (decoding through json_compat.c), one with the current lua-cjson
 * (openresty 2.1.0.17, built by the Makefile from the vendored source; its
 * values are used untouched). Input: one flag byte (1: big_integers =
 * "string", 2: max_values = the second byte + 1), then the JSON text.
 *
 * Invariants:
 *   - both states report the path they should (json_info().compat);
 *   - both accept or both refuse the text, and they accept exactly what
 *     strict_json.c calls RFC 8259 JSON (known leniencies of lua-cjson on
 *     text that is not JSON have tags, see README);
 *   - when they accept, the values are equal: same types (integer or
 *     float), same numbers bit for bit, same strings, objects with the same
 *     keys, and arrays (empty ones too) carrying the array metatable, objects
 *     none;
 *   - a text with an integer literal outside int64 is decoded with
 *     big_integers = "string" (current lua-cjson clamps such a literal to
 *     +-(2^63-1), 2.1.0 rounds it to a double: neither is exact, the README
 *     says so, and the option is the way to get it).
 */
#include "fuzz.h"
#include "strict_json.h"

#include "../src/buf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef FZ_CJSON_CURRENT_CPATH
#define FZ_CJSON_CURRENT_CPATH "build/cjson-current/?.so"
#endif

int luaopen_truto_core(lua_State *L); /* truto.c */

static int open_with(lua_State *L)
{
    const char *cpath = lua_tostring(L, 1);
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s;", cpath);
    lua_getfield(L, -2, "cpath");
    lua_concat(L, 2);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    luaL_requiref(L, "truto.core", luaopen_truto_core, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, FZ_CORE);
    return 0;
}

static lua_State *new_state(const char *cpath, int want_compat)
{
    lua_State *L = luaL_newstate();
    if (!L)
        fz_fail("luaL_newstate failed");
    luaL_openlibs(L);
    lua_pushcfunction(L, open_with);
    lua_pushstring(L, cpath);
    if (lua_pcall(L, 1, 0, 0) != 0)
        fz_fail("loading truto.core with %s: %s", cpath, lua_tostring(L, -1));
    fz_core_fn(L, "json_info");
    lua_call(L, 0, 1);
    lua_getfield(L, -1, "compat");
    FZ_CHECK(lua_toboolean(L, -1) == want_compat, "the state on %s %s the compatibility path",
             cpath, want_compat ? "does not take" : "takes");
    lua_settop(L, 0);
    return L;
}

/* ---- a canonical form of a decoded value, to compare across states ---- */

static void ser(lua_State *L, int idx, tbuf *out, int depth);

typedef struct {
    tbuf key; /* serialized key */
    tbuf val; /* serialized value */
} entry;

static int cmp_entry(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.data, y->key.data, n);
    return c ? c : (x->key.len > y->key.len) - (x->key.len < y->key.len);
}

static void ser_table(lua_State *L, int idx, tbuf *out, int depth)
{
    char tag = 'O';
    if (lua_getmetatable(L, idx)) {
        lua_getfield(L, LUA_REGISTRYINDEX, FZ_CORE);
        lua_getfield(L, -1, "array_mt");
        tag = lua_rawequal(L, -1, -3) ? 'A' : '?';
        lua_pop(L, 3);
    }
    size_t n = 0, cap = 8;
    entry *e = malloc(cap * sizeof *e);
    luaL_checkstack(L, 4, "fuzz_json_diff");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (n == cap)
            e = realloc(e, (cap *= 2) * sizeof *e);
        if (!e)
            fz_fail("out of memory");
        tbuf_init(&e[n].key);
        tbuf_init(&e[n].val);
        ser(L, lua_gettop(L) - 1, &e[n].key, depth + 1);
        ser(L, lua_gettop(L), &e[n].val, depth + 1);
        n++;
        lua_pop(L, 1);
    }
    qsort(e, n, sizeof *e, cmp_entry);
    tbuf_addc(out, tag);
    tbuf_addc(out, '{');
    for (size_t i = 0; i < n; i++) {
        tbuf_add(out, e[i].key.data, e[i].key.len);
        tbuf_addc(out, '=');
        tbuf_add(out, e[i].val.data, e[i].val.len);
        tbuf_addc(out, ';');
        tbuf_free(&e[i].key);
        tbuf_free(&e[i].val);
    }
    tbuf_addc(out, '}');
    free(e);
}

static void ser(lua_State *L, int idx, tbuf *out, int depth)
{
    char num[64];
    size_t len;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx))
            snprintf(num, sizeof num, "i%lld", (long long)lua_tointeger(L, idx));
        else
            snprintf(num, sizeof num, "f%a", (double)lua_tonumber(L, idx));
        tbuf_adds(out, num);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        snprintf(num, sizeof num, "s%zu:", len);
        tbuf_adds(out, num);
        tbuf_add(out, s, len);
        break;
    case LUA_TBOOLEAN:
        tbuf_adds(out, lua_toboolean(L, idx) ? "T" : "F");
        break;
    case LUA_TTABLE:
        if (depth > 1100)
            fz_fail("decoded value nested deeper than cjson allows");
        ser_table(L, lua_absindex(L, idx), out, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        tbuf_adds(out, lua_touserdata(L, idx) ? "U" : "null");
        break;
    default:
        tbuf_adds(out, "?");
        tbuf_adds(out, luaL_typename(L, idx));
    }
}

/* Decodes in L; 1 with the canonical form in out, or 0. */
static int decode_in(lua_State *L, const char *text, size_t len, int big, int max, tbuf *out)
{
    fz_core_fn(L, "decode");
    lua_pushlstring(L, text, len);
    lua_createtable(L, 0, 2);
    if (big) {
        lua_pushliteral(L, "string");
        lua_setfield(L, -2, "big_integers");
    }
    if (max) {
        lua_pushinteger(L, max);
        lua_setfield(L, -2, "max_values");
    }
    if (lua_pcall(L, 2, 2, 0) != 0)
        fz_fail("core.decode raised: %s", lua_tostring(L, -1));
    int ok = !lua_isnil(L, -2);
    if (ok)
        ser(L, -2, out, 0);
    else
        FZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "a refusal without a message");
    lua_settop(L, 0);
    return ok;
}

/* Whether the text has an integer literal outside int64 (outside strings). */
static int has_int64_overflow(const char *s, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c >= '0' && c <= '9') {
            size_t j = i;
            while (j < len && s[j] == '0')
                j++;
            size_t start = j;
            while (j < len && s[j] >= '0' && s[j] <= '9')
                j++;
            if (j - start >= 19)
                return 1;
            i = j;
        }
    }
    return 0;
}

/* Text strict_json_decode.c refuses but both lua-cjsons take, by leniencies they
 * share (lua_cjson.c, not ours): they read the text only up to its first
 * NUL byte ("[1]\0junk" is "[1]"), and take raw control characters inside
 * strings. Whether the text is valid JSON once those are forgiven. (A NUL
 * in the first two bytes is refused: lua-cjson takes it for UTF-16.) */
static int cjson_lenient(const char *s, size_t len)
{
    if (len >= 2 && (!s[0] || !s[1]))
        return 0;
    const char *nul = memchr(s, 0, len);
    size_t n = nul ? (size_t)(nul - s) : len;
    char *copy = malloc(n + 1);
    if (!copy)
        fz_fail("out of memory");
    int in_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        copy[i] = c;
        if (in_string && c == '\\' && i + 1 < n) {
            i++;
            copy[i] = s[i];
            continue;
        }
        if (c == '"')
            in_string = !in_string;
        else if (in_string && (unsigned char)c < 0x20)
            copy[i] = ' ';
    }
    int ok = sj_valid(copy, n);
    free(copy);
    return ok;
}

/* Whether [s, s+n) is an RFC 8259 number. */
static int strict_number(const char *s, size_t n)
{
    size_t i = s[0] == '-';
    if (i < n && s[i] == '0')
        i++;
    else if (i < n && s[i] >= '1' && s[i] <= '9')
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == d)
            return 0;
    }
    return i == n;
}

/* Whether the text has a number token outside RFC 8259 that strtod reads
 * ("-.5", "1.", "1.e3"): lua-cjson takes those even with
 * decode_invalid_numbers off, as a float; the compatibility path cannot
 * see that the float came from such a token, so the two may differ in the
 * subtype of an integral one. Not JSON: only accept/refuse is compared. */
static int has_lax_number(const char *s, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '-' || c == '.' || (c >= '0' && c <= '9')) {
            size_t j = i;
            while (j < len && (strchr("0123456789.eE+-", s[j]) && s[j]))
                j++;
            if (!strict_number(s + i, j - i))
                return 1;
            i = j - 1;
        }
    }
    return 0;
}

static int hex4(const char *s, size_t n, unsigned *v)
{
    *v = 0;
    if (n < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d > 15)
            return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* Whether a string of the text has a \u escape of a lone UTF-16
 * surrogate: RFC 8259's grammar allows it, lua-cjson refuses it (it could
 * not write it as UTF-8), and so does the module. */
static int has_lone_surrogate(const char *s, size_t len)
{
    int in_string = 0;
    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_string = 0;
        } else if (s[i] == '\\' && i + 1 < len) {
            unsigned v, w;
            i++;
            if (s[i] != 'u' || !hex4(s + i + 1, len - i - 1, &v))
                continue;
            i += 4;
            if (v >= 0xDC00 && v <= 0xDFFF)
                return 1;
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (i + 2 >= len || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                    !hex4(s + i + 3, len - i - 3, &w) || w < 0xDC00 || w > 0xDFFF)
                    return 1;
                i += 6;
            }
        }
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static lua_State *debian, *current;
    if (!debian) {
        debian = new_state(FZ_CJSON_CPATH, 1);
        current = new_state(FZ_CJSON_CURRENT_CPATH, 0);
    }
    fz_reader r = {data, size};
    uint8_t flags = fz_byte(&r);
    uint8_t maxb = fz_byte(&r);
    size_t len;
    const char *text = fz_bytes(&r, r.n, &len);
    int big = (flags & 1) || has_int64_overflow(text, len);
    int max = (flags & 2) ? maxb + 1 : 0;

    tbuf a, b;
    tbuf_init(&a);
    tbuf_init(&b);
    int ok_a = decode_in(debian, text, len, big, max, &a);
    int ok_b = decode_in(current, text, len, big, max, &b);
    FZ_CHECK(ok_a == ok_b, "Debian's path %s the text, the current lua-cjson %s it",
             ok_a ? "accepts" : "refuses", ok_a ? "refuses" : "accepts");
    /* lua-cjson reads up to the first NUL (see cjson_lenient); json_decode.c refuses
     * a text with a NUL byte anywhere (bytes after the document) */
    const char *nul = memchr(text, 0, len);
    size_t seen = nul ? (size_t)(nul - text) : len;
    int json = !nul && (sj_valid(text, len) || cjson_lenient(text, len)) &&
               !has_lone_surrogate(text, seen);
    if (!max && ok_a != json && !(ok_a && has_lax_number(text, len)))
        fz_fail("strict_json %s the text, both lua-cjson paths %s it", json ? "accepts" : "refuses",
                ok_a ? "accept" : "refuse");
    if (ok_a && json) {
        FZ_CHECK(a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                 "values differ:\n  debian:  %.*s\n  current: %.*s",
                 (int)(a.len > 2000 ? 2000 : a.len), a.data, (int)(b.len > 2000 ? 2000 : b.len),
                 b.data);
    }
    tbuf_free(&a);
    tbuf_free(&b);
    fz_reset(debian);
    fz_reset(current);
    return 0;
}
