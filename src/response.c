/* response.c - reading HTTP answers, see response.h. */
#include "response.h"
#include "buf.h"
#include "error.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

int tresp_decode(lua_State *L, const char *s, size_t len)
{
    tj_opts o = {0, 0, 0};
    return tj_decode(L, s, len, &o);
}

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
        if (len == 0 || status == 204) {
            lua_newtable(L);
            return 1;
        }
        if (tj_decode(L, body, len, &o))
            return 1;
        /* cjson's message names the position; keep it, drop the prefix. */
        lua_pushfstring(L, "response is not valid JSON (%s)", lua_tostring(L, -1));
        d.kind = "decode";
        d.message = lua_tostring(L, -1);
        d.body = 3;
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
