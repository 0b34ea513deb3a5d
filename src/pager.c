/* pager.c - cursor pagination state, see pager.h. */
#include "pager.h"
#include "value.h"

#include <string.h>

/* Bounds against a server that never ends a list: a cursor goes back in
 * the URL, so it is refused past MAX_CURSOR bytes; a run of MAX_EMPTY_RUN
 * empty pages is taken for a loop (the caller, given no item, could not
 * even break out); the seen set keeps the last SEEN_GENERATION to
 * 2 x SEEN_GENERATION cursors, so it cannot grow without end. */
#define MAX_CURSOR 8192
#define MAX_EMPTY_RUN 100
#define SEEN_GENERATION 1000

typedef struct {
    int done;       /* the last page had no next cursor */
    long pages;     /* pages fed so far */
    long empty_run; /* empty pages in a row */
    long seen_now;  /* cursors in the current generation of `seen` */
} tpager;

/* The user value holds the Lua side of the state, so the GC owns it:
 * { seen = { [cursor] = true, ... }, older = { ... } (the generation
 * before), cursor = <next cursor or nil> }. */

static tpager *check_pager(lua_State *L)
{
    return luaL_checkudata(L, 1, TRUTO_PAGER_MT);
}

int tpager_new(lua_State *L)
{
    size_t start_len = 0;
    const char *start = luaL_optlstring(L, 1, NULL, &start_len);
    tpager *p = lua_newuserdatauv(L, sizeof *p, 1);
    p->done = 0;
    p->pages = 0;
    p->empty_run = 0;
    p->seen_now = 0;
    lua_createtable(L, 0, 2);
    lua_newtable(L);
    if (start && start_len) { /* cursors are bytes: NULs included */
        lua_pushlstring(L, start, start_len);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_pushlstring(L, start, start_len);
        lua_setfield(L, -3, "cursor");
    }
    lua_setfield(L, -2, "seen");
    lua_setuservalue(L, -2);
    luaL_setmetatable(L, TRUTO_PAGER_MT);
    return 1;
}

static int refuse(lua_State *L, const char *kind, const char *message)
{
    lua_pushnil(L);
    lua_pushstring(L, kind);
    lua_pushstring(L, message);
    return 3;
}

/* Whether the result table at idx is keyed (truto_key_by): a map, not an array. */
static int is_keyed(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (!lua_next(L, idx))
        return 0;
    int keyed = lua_type(L, -2) == LUA_TSTRING;
    lua_pop(L, 2);
    return keyed;
}

/* Whether the set `name` of the state table at st holds the value at top. */
static int in_set(lua_State *L, int st, const char *name)
{
    lua_getfield(L, st, name);
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, -2);
    int found = lua_toboolean(L, -1);
    lua_pop(L, 2);
    return found;
}

/* Records the next cursor (at top of stack, popped) in the state table at
 * st. Returns 0 if the cursor was seen before. */
static int remember_cursor(lua_State *L, tpager *p, int st)
{
    if (in_set(L, st, "seen") || in_set(L, st, "older")) {
        lua_pop(L, 1);
        return 0;
    }
    if (p->seen_now >= SEEN_GENERATION) { /* a new generation; the oldest goes */
        lua_getfield(L, st, "seen");
        lua_setfield(L, st, "older");
        lua_newtable(L);
        lua_setfield(L, st, "seen");
        p->seen_now = 0;
    }
    lua_getfield(L, st, "seen");
    lua_pushvalue(L, -2);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    p->seen_now++;
    lua_setfield(L, st, "cursor");
    return 1;
}

/* pager:feed(page) -> result, keyed | nil, kind, message */
static int pager_feed(lua_State *L)
{
    tpager *p = check_pager(L);
    lua_settop(L, 2);
    if (p->done)
        return refuse(L, "loop", "the list has already ended");
    lua_getuservalue(L, 1);
    int st = lua_gettop(L);
    /* cjson gives arrays and objects alike as tables: an array has [1]. */
    if (lua_type(L, 2) != LUA_TTABLE || lua_rawlen(L, 2) > 0)
        return refuse(L, "decode", "list page is not a JSON object");
    lua_getfield(L, 2, "result");
    int result = lua_gettop(L);
    if (lua_type(L, result) != LUA_TTABLE)
        return refuse(L, "decode",
                      tv_is_null(L, result) || lua_isnil(L, result)
                          ? "list page has no result"
                          : "list page result is not an array or object");
    lua_getfield(L, 2, "next_cursor");
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || tv_is_null(L, -1) || (t == LUA_TSTRING && lua_rawlen(L, -1) == 0)) {
        p->done = 1;
        lua_pushnil(L);
        lua_setfield(L, st, "cursor");
    } else if (t != LUA_TSTRING) {
        return refuse(L, "decode", "list page next_cursor is not a string");
    } else if (lua_rawlen(L, -1) > MAX_CURSOR) {
        p->done = 1;
        return refuse(L, "decode", "list page next_cursor is longer than 8192 bytes");
    } else if (!remember_cursor(L, p, st)) {
        p->done = 1;
        return refuse(L, "loop",
                      "next_cursor repeats a cursor already seen: the remote side is looping");
    }
    p->pages++;
    lua_pushnil(L);
    int empty = !lua_next(L, result);
    if (!empty)
        lua_pop(L, 2);
    p->empty_run = empty ? p->empty_run + 1 : 0;
    if (empty && !p->done && p->empty_run >= MAX_EMPTY_RUN) {
        p->done = 1;
        return refuse(
            L, "loop",
            "100 empty pages in a row, each with a new cursor: the remote side is looping");
    }
    lua_pushvalue(L, result);
    lua_pushboolean(L, is_keyed(L, result));
    return 2;
}

/* pager:cursor() -> the cursor to ask for next, or nil when the list has ended */
static int pager_cursor(lua_State *L)
{
    tpager *p = check_pager(L);
    if (p->done) {
        lua_pushnil(L);
        return 1;
    }
    lua_getuservalue(L, 1);
    lua_getfield(L, -1, "cursor");
    return 1;
}

/* pager:done() -> whether the list has ended */
static int pager_done(lua_State *L)
{
    lua_pushboolean(L, check_pager(L)->done);
    return 1;
}

/* pager:pages() -> how many pages were fed */
static int pager_pages(lua_State *L)
{
    lua_pushinteger(L, check_pager(L)->pages);
    return 1;
}

void tpager_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"feed", pager_feed}, {"cursor", pager_cursor},
        {"done", pager_done}, {"pages", pager_pages},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, TRUTO_PAGER_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
