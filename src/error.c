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

/* Appends s, with the control characters a server could use to forge
 * lines or drive a terminal (C0, DEL, and C1 as UTF-8) written as \xHH:
 * what the server said stays readable, and tostring() stays one line. */
static void add_printable(luaL_Buffer *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        int c1 = c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
                 (unsigned char)s[i + 1] <= 0x9f;
        if (c1)
            c = (unsigned char)s[++i];
        if (c < 0x20 || c == 0x7f || c1) {
            luaL_addstring(b, "\\x");
            luaL_addchar(b, hex[c >> 4]);
            luaL_addchar(b, hex[c & 15]);
        } else {
            luaL_addchar(b, (char)c);
        }
    }
}

/* One line: "truto: http 404 Not Found: Integrated account not found (GET url)". */
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

    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "truto: ");
    luaL_addstring(&b, kind ? kind : "error");
    if (isnum) {
        char num[24];
        snprintf(num, sizeof num, " %lld", (long long)status);
        luaL_addstring(&b, num);
        if (error) {
            luaL_addchar(&b, ' ');
            add_printable(&b, error, strlen(error));
        }
    }
    if (message) {
        luaL_addstring(&b, ": ");
        add_printable(&b, message, strlen(message));
    }
    if (method && url) {
        luaL_addstring(&b, " (");
        luaL_addstring(&b, method);
        luaL_addchar(&b, ' ');
        /* one line stays one readable line: long URLs are cut */
        size_t len = strlen(url);
        add_printable(&b, url, len > TERR_URL_SHOWN ? TERR_URL_SHOWN : len);
        if (len > TERR_URL_SHOWN)
            luaL_addstring(&b, "...");
        luaL_addchar(&b, ')');
    }
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
