/* error.c - building error objects, see error.h. */
#include "error.h"
#include "retry.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

/* Copies body[name] into err[field] when body is a table and it is set. */
static void copy_field(lua_State *L, int err, int body, const char *name, const char *field)
{
    lua_getfield(L, body, name);
    if (lua_isnil(L, -1))
        lua_pop(L, 1);
    else
        lua_setfield(L, err, field);
}

/* Truto's error body: { statusCode, error, message, truto_is_remote_error,
 * truto_error_insight, raw_response }. */
static void copy_truto_body(lua_State *L, int err, int body)
{
    copy_field(L, err, body, "error", "error");
    lua_getfield(L, body, "message");
    if (lua_type(L, -1) == LUA_TSTRING)
        lua_setfield(L, err, "message");
    else
        lua_pop(L, 1);
    lua_getfield(L, body, "truto_is_remote_error");
    lua_pushboolean(L, lua_toboolean(L, -1));
    lua_setfield(L, err, "remote");
    lua_pop(L, 1);
    copy_field(L, err, body, "truto_error_insight", "insight");
}

/* A header's value when it is a string, else NULL. Only strings: the
 * table keeps them alive after the pop, where a converted number would be
 * garbage at once. */
static const char *header(lua_State *L, int headers, const char *name)
{
    lua_getfield(L, headers, name);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return v;
}

static void set_retry_after(lua_State *L, int err, int headers)
{
    double wait = tr_retry_after(header(L, headers, "retry-after"),
                                 header(L, headers, "ratelimit-reset"), time(NULL));
    if (wait < 0)
        return;
    lua_pushnumber(L, wait);
    lua_setfield(L, err, "retry_after");
}

static void set_string(lua_State *L, int t, const char *field, const char *v)
{
    if (!v)
        return;
    lua_pushstring(L, v);
    lua_setfield(L, t, field);
}

void terr_push(lua_State *L, const terr_desc *d)
{
    luaL_checkstack(L, 6, NULL);
    int body = d->body ? lua_absindex(L, d->body) : 0;
    int headers = d->headers ? lua_absindex(L, d->headers) : 0;

    lua_createtable(L, 0, 12);
    int err = lua_gettop(L);
    set_string(L, err, "kind", d->kind);
    set_string(L, err, "message", d->message);
    set_string(L, err, "method", d->method);
    set_string(L, err, "url", d->url);
    lua_pushboolean(L, 0);
    lua_setfield(L, err, "remote");
    if (d->status) {
        lua_pushinteger(L, d->status);
        lua_setfield(L, err, "status");
    }
    if (body) {
        if (lua_type(L, body) == LUA_TSTRING && lua_rawlen(L, body) > TERR_BODY_MAX)
            lua_pushlstring(L, lua_tostring(L, body), TERR_BODY_MAX);
        else
            lua_pushvalue(L, body);
        lua_setfield(L, err, "body");
        if (lua_type(L, body) == LUA_TTABLE)
            copy_truto_body(L, err, body);
    }
    if (headers) {
        lua_pushvalue(L, headers);
        lua_setfield(L, err, "headers");
        set_retry_after(L, err, headers);
    }
    luaL_setmetatable(L, TRUTO_ERROR_MT);
}

/* A string field of the table at 1, or NULL; the table keeps it alive. */
static const char *string_field(lua_State *L, const char *name)
{
    lua_getfield(L, 1, name);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return v;
}

/* The one line of tostring(), at most TERR_LINE_MAX bytes: what does not
 * fit is left out whole (never half a UTF-8 sequence or escape), and
 * `cut` says so. With b NULL it only counts. */
typedef struct {
    luaL_Buffer *b;
    size_t room;
    int cut;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->cut || n > l->room) {
        l->cut = 1;
        return;
    }
    if (l->b)
        luaL_addlstring(l->b, s, n);
    l->room -= n;
}

static void puts_(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Bytes of the UTF-8 sequence that starts with c, as far as s has them. */
static size_t sequence_len(const unsigned char *s, size_t i, size_t len)
{
    size_t n = s[i] >= 0xF0 ? 4 : s[i] >= 0xE0 ? 3 : s[i] >= 0xC0 ? 2 : 1;
    size_t k = 1;
    while (k < n && i + k < len && (s[i + k] & 0xC0) == 0x80)
        k++;
    return k;
}

/* Appends s, with the control characters a server could use to forge
 * lines or drive a terminal (C0, DEL, and C1 as UTF-8) written as \xHH:
 * what the server said stays readable, and tostring() stays one line. */
static void add_printable(line *l, const char *str, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < len && !l->cut;) {
        unsigned char c = s[i];
        int c1 = c == 0xc2 && i + 1 < len && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f;
        if (c1)
            c = s[++i];
        if (c < 0x20 || c == 0x7f || c1) {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            put(l, esc, sizeof esc);
            i++;
        } else {
            size_t n = sequence_len(s, i, len);
            put(l, str + i, n);
            i += n;
        }
    }
}

/* " (GET url)": long URLs are cut to TERR_URL_SHOWN bytes. */
static void add_request(line *l, const char *method, const char *url)
{
    if (!method || !url)
        return;
    size_t len = strlen(url);
    puts_(l, " (");
    add_printable(l, method, strlen(method));
    puts_(l, " ");
    add_printable(l, url, len > TERR_URL_SHOWN ? TERR_URL_SHOWN : len);
    if (len > TERR_URL_SHOWN)
        puts_(l, "...");
    puts_(l, ")");
}

/* One line: "truto: http 404 Not Found: Integrated account not found (GET
 * url)", at most TERR_LINE_MAX bytes: a long message is cut ("..."), the
 * request stays; the whole text stays in the fields. */
static int error_tostring(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    const char *kind = string_field(L, "kind");
    const char *error = string_field(L, "error");
    const char *message = string_field(L, "message");
    const char *method = string_field(L, "method");
    const char *url = string_field(L, "url");
    lua_getfield(L, 1, "status");
    int isnum = 0;
    lua_Integer status = lua_tointegerx(L, -1, &isnum);
    lua_pop(L, 1);

    line count = {NULL, (size_t)-1, 0};
    add_request(&count, method, url);
    size_t request_len = (size_t)-1 - count.room;

    luaL_Buffer b;
    luaL_buffinit(L, &b);
    line l = {&b, TERR_LINE_MAX - 3 - request_len, 0};
    puts_(&l, "truto: ");
    add_printable(&l, kind ? kind : "error", strlen(kind ? kind : "error"));
    if (isnum) {
        char num[24];
        snprintf(num, sizeof num, " %lld", (long long)status);
        puts_(&l, num);
        if (error) {
            puts_(&l, " ");
            add_printable(&l, error, strlen(error));
        }
    }
    if (message) {
        puts_(&l, ": ");
        add_printable(&l, message, strlen(message));
    }
    if (l.cut)
        luaL_addstring(&b, "...");
    l.cut = 0;
    l.room = request_len;
    add_request(&l, method, url);
    luaL_pushresult(&b);
    return 1;
}

void terr_register(lua_State *L)
{
    if (luaL_newmetatable(L, TRUTO_ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "truto.error");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
}

int terr_from_table(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, TRUTO_ERROR_MT);
    return 1;
}
