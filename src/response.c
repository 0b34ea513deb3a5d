/* response.c - reading HTTP answers, see response.h. */
#include "response.h"
#include "buf.h"
#include "error.h"
#include "json.h"

#include <stdio.h>
#include <string.h>

int tresp_decode(lua_State *L, const char *s, size_t len)
{
    tbuf protected;
    tbuf_init(&protected);
    int markers = tj_protect_bigints(s, len, &protected);

    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_DECODE);
    if (markers)
        lua_pushlstring(L, protected.data, protected.len);
    else
        lua_pushlstring(L, s, len);
    tbuf_free(&protected);
    /* cjson raises on bad input; catch it so a bad body is a value, not a throw. */
    if (lua_pcall(L, 1, 1, 0) != 0)
        return 0;
    tj_normalize(L, -1, markers);
    return 1;
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
    char msg[64];
    terr_desc d = {"http", (int)status, NULL, method, url, 0, 2};

    if (is_success(status)) {
        if (len == 0 || status == 204) {
            lua_newtable(L);
            return 1;
        }
        if (tresp_decode(L, body, len))
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
    if (len > 0 && tresp_decode(L, body, len)) {
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
    if (tresp_decode(L, s, len))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}
