/* transport_curl.c - the libcurl transport, see transport_curl.h.
 *
 * One multi handle per client drives every transfer, so all of a client's
 * requests share one connection cache: sequential calls reuse one
 * keep-alive connection, and several requests can be in flight at once
 * (read-ahead, many accounts). A request is a "slot": an easy handle taken
 * from the client's idle pool plus the buffers its answer goes into.
 *
 * Our libcurl callbacks only copy bytes into C buffers; no Lua code runs
 * inside libcurl, so no Lua error can unwind through its frames.
 *
 * The contract is truto.transport's (src/truto/transport.lua): a request is
 * a table { method, url, headers, body, timeout, connect_timeout, max_body,
 * reuse }, sent exactly as named (path as is, no dot-segment removal); we
 * add only Authorization (and libcurl Host, Content-Length and
 * Accept-Encoding). An answer is { status, headers, body, sends }, a
 * failure { kind, message, sends, too_large, stale }. `sends` counts how
 * often the request went on the wire: libcurl itself sends a request again
 * when a reused connection turns out dead, and that must be seen.
 *
 * This file holds the Lua bindings; the work is in curl_request.c,
 * curl_client.c, curl_drive.c and curl_answer.c (see curl_internal.h).
 */
#include "curl_internal.h"

#include <string.h>

/* ---- Lua: the client ---------------------------------------------------- */

static tcurl *check_curl(lua_State *L)
{
    tcurl *t = luaL_checkudata(L, 1, TRUTO_CURL_MT);
    if (!t->auth_header)
        luaL_error(L, "transport is closed");
    return t;
}

/* transport:pause(seconds) -> true | false, "interrupted": waits seconds,
 * reading the answers of the transfers in flight as they come (they are
 * then ready for their own wait; a read-ahead's timeout does not run, as
 * nobody waits for it), and ends early on SIGINT (see curl_drive.c). */
static int curl_pause(lua_State *L)
{
    tcurl *t = check_curl(L);
    lua_Number s = luaL_checknumber(L, 2);
    if (!(s <= 1e9)) /* also nan and infinity */
        return luaL_argerror(L, 2, "seconds out of range");
    if (!(s > 0)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (tcurl_pause(t, s)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "interrupted");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

#define TRUTO_REQUEST_MT "truto.request"

/* Pushes a new request userdata for client t (at stack index 1) and starts
 * it with the arguments at 2..7. The garbage collector owns the slot, so a
 * Lua error at any later point cannot leave it dangling. */
static slot *push_started_request(lua_State *L, tcurl *t)
{
    slot *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, TRUTO_REQUEST_MT);
    lua_pushvalue(L, 1); /* the request keeps its client alive */
    lua_setuservalue(L, -2);
    tcurl_start_slot(L, t, s);
    return s;
}

/* Pushes the answer of a finished slot and frees what the slot held. */
static int finish(lua_State *L, slot *s)
{
    int n = tcurl_push_answer(L, s);
    tcurl_release_slot(s);
    tcurl_free_slot_buffers(s);
    return n;
}

/*
 * transport:perform(req) -> answer | nil, failure
 * Blocks until the answer is in.
 */
static int curl_perform(lua_State *L)
{
    tcurl *t = check_curl(L);
    slot *s = push_started_request(L, t);
    tcurl_wait_slot(t, s);
    return finish(L, s);
}

/* transport:pump(): lets running transfers make progress without blocking. */
static int curl_pump(lua_State *L)
{
    tcurl_pump(check_curl(L));
    return 0;
}

static int curl_gc(lua_State *L)
{
    tcurl_free(luaL_checkudata(L, 1, TRUTO_CURL_MT));
    return 0;
}

static int curl_tostring(lua_State *L)
{
    lua_pushfstring(L, "truto.curl (%p)", lua_touserdata(L, 1));
    return 1;
}

/* ---- Lua: requests in flight -------------------------------------------- */

static slot *check_request(lua_State *L)
{
    return luaL_checkudata(L, 1, TRUTO_REQUEST_MT);
}

/*
 * transport:start(req) -> request
 * Starts a request and returns at once; request:wait() gives its answer.
 */
static int curl_start(lua_State *L)
{
    tcurl *t = check_curl(L);
    push_started_request(L, t);
    tcurl_pump(t);
    return 1;
}

/* request:wait() -> the answer, as transport:perform gives it. Once only. */
static int request_wait(lua_State *L)
{
    slot *s = check_request(L);
    if (s->state == SLOT_IDLE || !s->owner)
        return luaL_error(L, "request was cancelled or already read");
    tcurl_wait_slot(s->owner, s);
    return finish(L, s);
}

/* request:done() -> whether the answer is in (never blocks) */
static int request_done(lua_State *L)
{
    slot *s = check_request(L);
    if (s->state == SLOT_RUNNING && s->owner && !tcurl_orphaned(s))
        tcurl_pump(s->owner);
    lua_pushboolean(L, s->state == SLOT_DONE);
    return 1;
}

/* request:cancel(): abandons the request; never raises. Also __gc/__close. */
static int request_cancel(lua_State *L)
{
    slot *s = check_request(L);
    tcurl_release_slot(s);
    tcurl_free_slot_buffers(s);
    return 0;
}

/*
 * transport:wait_any(requests[, timeout]) -> index of a finished request in the array
 * (false when timeout seconds pass first)
 * `requests` (blocking until one finishes), or nil if none is running.
 */
static int curl_wait_any(lua_State *L)
{
    tcurl *t = check_curl(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    /* a request of another client is not driven by this one: refuse it
     * (waiting on it here would spin or block forever) */
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i);
        slot *s = luaL_testudata(L, -1, TRUTO_REQUEST_MT);
        lua_pop(L, 1);
        if (s && s->state != SLOT_IDLE && s->owner != t)
            return luaL_error(L, "wait_any: request %d belongs to another transport", (int)i);
    }
    /* timeout (optional, seconds): return false when it passes first */
    double limit = luaL_optnumber(L, 3, -1);
    double until = limit >= 0 ? tcurl_monotonic() + limit : 0;
    double elapsed = 0;
    for (;;) {
        int any_running = 0, ms = 1000;
        int driven = tcurl_pump(t);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, 2, (lua_Integer)i);
            slot *s = luaL_testudata(L, -1, TRUTO_REQUEST_MT);
            lua_pop(L, 1);
            if (!s)
                continue;
            tcurl_orphaned(s);
            if (!driven)
                tcurl_fail_slot(s, "curl", "the transfer could not be driven");
            tcurl_charge_wait(s, elapsed);
            if (s->state == SLOT_DONE) {
                lua_pushinteger(L, (lua_Integer)i);
                return 1;
            }
            any_running |= s->state == SLOT_RUNNING && s->owner == t;
            ms = tcurl_poll_ms(s, ms);
        }
        if (!any_running) {
            lua_pushnil(L);
            return 1;
        }
        double t0 = tcurl_monotonic();
        if (limit >= 0) {
            if (t0 >= until) {
                lua_pushboolean(L, 0);
                return 1;
            }
            double left_ms = (until - t0) * 1000 + 1;
            if (left_ms < ms)
                ms = (int)left_ms;
        }
        tcurl_poll_multi(t, ms); /* on failure every running request is done: found next round */
        elapsed = tcurl_monotonic() - t0;
    }
}

void tcurl_register(lua_State *L)
{
    static const luaL_Reg client_methods[] = {
        {"perform", curl_perform},
        {"start", curl_start},
        {"pump", curl_pump},
        {"wait_any", curl_wait_any},
        {"pause", curl_pause},
        {"close", curl_gc},
        {NULL, NULL},
    };
    static const luaL_Reg request_methods[] = {
        {"wait", request_wait},
        {"done", request_done},
        {"cancel", request_cancel},
        {NULL, NULL},
    };
    tcurl_init_state(L);
    if (luaL_newmetatable(L, TRUTO_CURL_MT)) {
        luaL_newlib(L, client_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, curl_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, curl_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TRUTO_REQUEST_MT)) {
        luaL_newlib(L, request_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, request_cancel);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, request_cancel);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
}
