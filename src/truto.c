/*
 * truto.c - luaopen_truto_core: the C half of the module.
 *
 * The public API lives in truto.lua (policy: clients, iterators, argument
 * checks); this file exposes the primitives it is built from, in the
 * LuaSocket manner:
 *   encode_query(params)        -> query string | nil, message
 *   segment(id)                 -> escaped path segment | nil, message
 *   encode_json(value)          -> JSON text | nil, message
 *   decode(text[, opts])        -> value | nil, message
 *   decode_json(text[, opts])   -> value | nil, err (a "decode" error object)
 *   json_info()                 -> { array_mt, integers, compat } (json.h)
 *   read_response(status, headers, body, method, url[, opts]) -> value | nil, err
 *   retry_after(retry_after, ratelimit_reset) -> seconds | nil
 *   sleep(seconds), now() -> monotonic seconds
 *   error(fields)               -> error object
 *   pager([cursor])             -> pager (pager.h)
 *   curl(opts)                  -> libcurl transport (transport_curl.h)
 *   array_mt, error_mt, VERSION
 */
#include "buf.h"
#include "compat.h"
#include "error.h"
#include "json.h"
#include "pager.h"
#include "query.h"
#include "response.h"
#include "retry.h"
#include "transport_curl.h"
#include "value.h"
#include "version.h"

#include <errno.h>
#include <math.h>
#include <time.h>

/* Runs an encoder into a buffer and returns its text or nil, message. */
typedef int (*encoder)(lua_State *L, int idx, tbuf *out, tbuf *err);

static int run_encoder(lua_State *L, encoder encode)
{
    tbuf out, err;
    tbuf_init(&out);
    tbuf_init(&err);
    int ok = encode(L, 1, &out, &err);
    if (ok) {
        lua_pushlstring(L, out.data ? out.data : "", out.len);
    } else {
        lua_pushnil(L);
        lua_pushlstring(L, err.data ? err.data : "", err.len);
    }
    tbuf_free(&out);
    tbuf_free(&err);
    return ok ? 1 : 2;
}

static int l_encode_query(lua_State *L)
{
    luaL_checkany(L, 1);
    return run_encoder(L, tq_encode);
}

static int l_encode_json(lua_State *L)
{
    luaL_checkany(L, 1);
    return run_encoder(L, tj_encode);
}

static int l_segment(lua_State *L)
{
    luaL_checkany(L, 1);
    return run_encoder(L, tq_segment);
}

static int l_retry_after(lua_State *L)
{
    double wait =
        tr_retry_after(luaL_optstring(L, 1, NULL), luaL_optstring(L, 2, NULL), time(NULL));
    if (wait < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, wait);
    return 1;
}

/* core.sleep(seconds): the blocking wait between retries outside nginx. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s > 0))
        return 0;
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - floor(s)) * 1e9);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* core.now() -> seconds on a monotonic clock, for waits and rate limits. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

int luaopen_truto_core(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"encode_query", l_encode_query},
        {"encode_json", l_encode_json},
        {"segment", l_segment},
        {"decode", tresp_decode_lua},
        {"decode_json", tresp_decode_json},
        {"json_info", tj_info},
        {"read_response", tresp_read},
        {"retry_after", l_retry_after},
        {"sleep", l_sleep},
        {"now", l_now},
        {"error", terr_from_table},
        {"pager", tpager_new},
        {"curl", tcurl_new},
        {NULL, NULL},
    };
    tj_init(L); /* lua-cjson: private instance, capabilities, array metatable */
    terr_register(L);
    tpager_register(L);
    tcurl_register(L);
    luaL_newmetatable(L, TRUTO_ARRAY_MT);
    lua_pop(L, 1);

    luaL_newlib(L, functions);
    luaL_getmetatable(L, TRUTO_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    luaL_getmetatable(L, TRUTO_ERROR_MT);
    lua_setfield(L, -2, "error_mt");
    lua_pushliteral(L, TRUTO_VERSION);
    lua_setfield(L, -2, "VERSION");
    return 1;
}
