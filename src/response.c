/* response.c - reading HTTP answers, see response.h. */
#include "response.h"
#include "buf.h"
#include "error.h"
#include "json.h"
#include "value.h"

#include <stdio.h>
#include <string.h>

static int is_success(lua_Integer status)
{
    return status >= 200 && status < 300;
}

/* "HTTP 502" when the server said nothing useful. */
static const char *status_message(char *out, size_t n, lua_Integer status)
{
    snprintf(out, n, "HTTP %lld", (long long)status);
    return out;
}

/* What the decoded value on top is, for a message: "array", "null", ... */
static const char *json_type(lua_State *L)
{
    if (lua_type(L, -1) == LUA_TTABLE)
        return tv_is_marked_array(L, -1) ? "array" : "object";
    if (lua_type(L, -1) == LUA_TSTRING)
        return "string";
    return tv_typename(L, -1);
}

/* Why a 2xx answer is not a single JSON object, or NULL when it is one
 * (the value is then on top). A DELETE may answer 204 or nothing; every
 * other call names one object, and an answer that is not one is not
 * passed on as if it were (a script would write back what it read). */
static const char *not_an_object(lua_State *L, lua_Integer status, size_t len, const char *method)
{
    int is_delete = method && strcmp(method, "DELETE") == 0;
    if (status == 204 || len == 0) {
        if (is_delete) {
            lua_newtable(L);
            return NULL;
        }
        return status == 204 ? "a 204 answer has no body; a JSON object was expected"
                             : "the answer has no body; a JSON object was expected";
    }
    const char *type = json_type(L);
    if (strcmp(type, "object") == 0)
        return NULL;
    lua_pushfstring(L, "response is not a JSON object (got %s)", type);
    return lua_tostring(L, -1);
}

int tresp_read(lua_State *L)
{
    lua_Integer status = luaL_checkinteger(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t len;
    const char *body = luaL_checklstring(L, 3, &len);
    const char *method = luaL_optstring(L, 4, NULL);
    const char *url = luaL_optstring(L, 5, NULL);
    tj_opts o;
    tj_opts_check(L, 6, &o);
    o.text_idx = 3; /* the body: lua-cjson reads it without a copy */
    char msg[64];
    terr_desc d = {"http", (int)status, NULL, method, url, 0, 2};

    if (is_success(status)) {
        d.kind = "decode";
        d.body = len > 0 ? 3 : 0;
        int no_body = status == 204 || len == 0;
        if (no_body || tj_decode(L, body, len, &o)) {
            d.message = not_an_object(L, status, len, method);
        } else {
            /* cjson's message names the position; keep it, drop the prefix. */
            lua_pushfstring(L, "response is not valid JSON (%s)", lua_tostring(L, -1));
            d.message = lua_tostring(L, -1);
        }
        if (!d.message)
            return 1;
        lua_pushnil(L);
        terr_push(L, &d);
        return 2;
    }

    d.message = status_message(msg, sizeof msg, status);
    if (len > 0 && tj_decode(L, body, len, &o)) {
        d.body = lua_gettop(L);
    } else {
        d.body = len > 0 ? 3 : 0;
    }
    lua_pushnil(L);
    terr_push(L, &d);
    return 2;
}

int tresp_decode_lua(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    tj_opts o;
    tj_opts_check(L, 2, &o);
    o.text_idx = 1;
    if (tj_decode(L, s, len, &o))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

int tresp_decode_json(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    tj_opts o;
    tj_opts_check(L, 2, &o);
    o.text_idx = 1;
    if (tj_decode(L, s, len, &o))
        return 1;
    lua_pushfstring(L, "not valid JSON (%s)", lua_tostring(L, -1));
    terr_desc d = {"decode", 0, lua_tostring(L, -1), NULL, NULL, 0, 0};
    lua_pushnil(L);
    terr_push(L, &d);
    return 2;
}
