/*
 * fuzz_response.c - core.read_response(status, headers, body, method, url)
 * through lua_pcall, as the Lua layer calls it.
 *
 * Input: 2 bytes status (big-endian), 1 flags byte, header lines
 * "name: value" separated by '\n' up to a NUL byte, then the body.
 * Flags: 1 header values that read as numbers are passed as Lua numbers,
 *        2 garbage-collector stress (a whole cycle at every GC check),
 *        4 the body is repeated past 64 KiB,
 *        8 method and url are passed.
 *
 * Invariants: it never raises; a 2xx gives one non-nil value or nil and a
 * "decode" error; anything else gives nil and an "http" error. An error has
 * the truto.error metatable, the status, the headers table, a string
 * message, retry_after nil or a finite number >= 0, the body (decoded JSON
 * for a non-2xx, else the raw text; a string cut to 64 KiB), and tostring()
 * works.
 */
#include "fuzz.h"

#include "../src/error.h"
#include "../src/response.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

enum { F_NUMBERS = 1, F_GC_STRESS = 2, F_BIG_BODY = 4, F_METHOD_URL = 8 };

/* The cut applied to err.body, as a size_t. */
#define BODY_MAX ((size_t)TERR_BODY_MAX)

#define URL "https://api.truto.one/unified/user-directory/users"

/* Adds one "name: value" line to the table on top; the name lower-cased as
 * the transport gives it. */
static void add_header(lua_State *L, const char *line, size_t n, int numbers)
{
    const char *colon = memchr(line, ':', n);
    if (!colon || colon == line)
        return;
    luaL_Buffer name;
    luaL_buffinit(L, &name);
    for (const char *c = line; c < colon; c++)
        luaL_addchar(&name, (char)tolower((unsigned char)*c));
    luaL_pushresult(&name);
    const char *v = colon + 1;
    while (v < line + n && *v == ' ')
        v++;
    lua_pushlstring(L, v, (size_t)(line + n - v));
    if (numbers && lua_stringtonumber(L, lua_tostring(L, -1)))
        lua_remove(L, -2); /* keep the number */
    lua_rawset(L, -3);
}

static void push_headers(lua_State *L, const char *s, size_t len, int numbers)
{
    lua_newtable(L);
    while (len) {
        const char *nl = memchr(s, '\n', len);
        size_t n = nl ? (size_t)(nl - s) : len;
        add_header(L, s, n, numbers);
        size_t step = n + (nl != NULL);
        s += step;
        len -= step;
    }
}

/* The body as passed; with F_BIG_BODY repeated past BODY_MAX. */
static void push_body(lua_State *L, const char *s, size_t len, int big)
{
    if (!big) {
        lua_pushlstring(L, s, len);
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (!len)
        s = "x", len = 1;
    for (size_t total = 0; total <= BODY_MAX; total += len)
        luaL_addlstring(&b, s, len);
    luaL_pushresult(&b);
}

/* Cuts the string on top of the stack to BODY_MAX bytes. */
static void cut_string(lua_State *L)
{
    if (lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > BODY_MAX) {
        lua_pushlstring(L, lua_tostring(L, -1), BODY_MAX);
        lua_remove(L, -2);
    }
}

/* What err.body should be: nil for an empty body, the decoded value for a
 * non-2xx JSON body, else the raw text; strings cut to 64 KiB. */
static void push_expected_body(lua_State *L, int body, int ok_status)
{
    size_t len;
    const char *s = lua_tolstring(L, body, &len);
    if (len == 0) {
        lua_pushnil(L);
        return;
    }
    if (!ok_status) {
        if (fz_decode(L, s, len)) {
            cut_string(L);
            return;
        }
        lua_pop(L, 1); /* cjson's message */
    }
    lua_pushvalue(L, body);
    cut_string(L);
}

static void check_body_field(lua_State *L, int err, int body, int ok_status)
{
    push_expected_body(L, body, ok_status);
    lua_getfield(L, err, "body");
    FZ_CHECK(lua_type(L, -1) == lua_type(L, -2), "err.body is a %s, expected a %s",
             luaL_typename(L, -1), luaL_typename(L, -2));
    if (lua_type(L, -1) == LUA_TSTRING)
        FZ_CHECK(lua_rawlen(L, -1) <= BODY_MAX, "err.body has %zu bytes, more than 64 KiB",
                 (size_t)lua_rawlen(L, -1));
    if (lua_type(L, -1) != LUA_TTABLE)
        FZ_CHECK(lua_rawequal(L, -1, -2), "err.body is not the body received");
    lua_pop(L, 2);
}

static void check_tostring(lua_State *L, int err, int with_url)
{
    lua_getglobal(L, "tostring");
    lua_pushvalue(L, err);
    FZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "tostring(err) raised: %s", lua_tostring(L, -1));
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    FZ_CHECK(s && len >= 7 && memcmp(s, "truto: ", 7) == 0, "tostring(err) gave \"%s\"", s);
    FZ_CHECK(!with_url || strstr(s, " (GET " URL ")"), "tostring(err) lacks the request: %s", s);
    lua_pop(L, 1);
}

static void check_metatable(lua_State *L, int err)
{
    FZ_CHECK(lua_type(L, err) == LUA_TTABLE, "error is a %s", luaL_typename(L, err));
    FZ_CHECK(lua_getmetatable(L, err), "error has no metatable");
    luaL_getmetatable(L, TRUTO_ERROR_MT);
    FZ_CHECK(lua_rawequal(L, -1, -2), "error metatable is not truto.error");
    lua_pop(L, 2);
}

static void check_error(lua_State *L, int err, lua_Integer status, int headers, int body,
                        int with_url)
{
    int ok_status = status >= 200 && status < 300;
    check_metatable(L, err);
    lua_getfield(L, err, "kind");
    const char *kind = lua_tostring(L, -1);
    FZ_CHECK(kind && strcmp(kind, ok_status ? "decode" : "http") == 0, "kind %s for status %lld",
             kind ? kind : "nil", (long long)status);
    lua_getfield(L, err, "status");
    FZ_CHECK(status == 0 ? lua_isnil(L, -1) : lua_tointeger(L, -1) == status,
             "err.status is wrong");
    lua_getfield(L, err, "message");
    FZ_CHECK(lua_type(L, -1) == LUA_TSTRING, "err.message is not a string");
    lua_getfield(L, err, "headers");
    FZ_CHECK(lua_rawequal(L, -1, headers), "err.headers is not the headers table");
    lua_getfield(L, err, "retry_after");
    FZ_CHECK(lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && lua_tonumber(L, -1) >= 0 &&
                                  isfinite(lua_tonumber(L, -1))),
             "err.retry_after is not nil or a finite number >= 0");
    lua_pop(L, 5);
    check_body_field(L, err, body, ok_status);
    check_tostring(L, err, with_url);
}

/* A marker of json_compat.c never reaches the caller. Its prefix is a run
 * of bytes no \u escape makes (0xC0, 0xC1, 0xF5-0xFF) chosen to occur
 * nowhere in the body, so a top-level string that starts with such bytes
 * must find them in the body (body at stack index 2). */
static int odd(unsigned char c)
{
    return c == 0xC0 || c == 0xC1 || c >= 0xF5;
}

static void check_no_marker(lua_State *L)
{
    size_t len, blen, k = 0;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
    const char *body = lua_tolstring(L, 2, &blen);
    while (s && k < len && odd((unsigned char)s[k]))
        k++;
    FZ_CHECK(k == 0 || memmem(body, blen, s, k) != NULL,
             "read_response returned a marker string of json_compat.c");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    fz_reader r = {data, size};
    lua_Integer status = (lua_Integer)fz_byte(&r) << 8;
    status |= fz_byte(&r);
    int flags = fz_byte(&r);
    /* error.c header() keeps a pointer to a string it converted from a
     * number and popped; under GC stress that is a use after free
     * (finding "numeric-header-uaf"). */
    if (fz_ignored("numeric-header-uaf"))
        flags &= ~F_NUMBERS;
    size_t hlen, blen;
    const char *head = fz_until_nul(&r, &hlen);
    const char *body = fz_bytes(&r, r.n, &blen);

    /* headers and body stay at 1 and 2 for the checks */
    push_headers(L, head, hlen, flags & F_NUMBERS);
    push_body(L, body, blen, flags & F_BIG_BODY);
    fz_core_fn(L, "read_response");
    lua_pushinteger(L, status);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    if (flags & F_METHOD_URL) {
        lua_pushliteral(L, "GET");
        lua_pushliteral(L, URL);
    }
    if (flags & F_GC_STRESS)
        fz_gc_stress(L);
    FZ_CHECK(lua_pcall(L, lua_gettop(L) - 3, LUA_MULTRET, 0) == 0, "read_response raised: %s",
             lua_tostring(L, -1));
    int nret = lua_gettop(L) - 2;
    if (nret == 1) {
        FZ_CHECK(status >= 200 && status < 300, "status %lld gave a value", (long long)status);
        FZ_CHECK(!lua_isnil(L, -1), "read_response returned a lone nil");
        check_no_marker(L);
    } else {
        FZ_CHECK(nret == 2, "read_response returned %d values", nret);
        FZ_CHECK(lua_isnil(L, -2), "read_response returned a value and an error");
        check_error(L, 4, status, 1, 2, flags & F_METHOD_URL);
    }
    fz_reset(L);
    return 0;
}
