/*
 * compat.h - the one place where Lua version differences live.
 *
 * The module is written against the Lua 5.4 C API; this header supplies
 * what older runtimes lack, so no other file needs an #if on the version:
 *
 *   5.3      lua_newuserdatauv (one user value)
 *   5.2      COMPAT_INTEGERS is 0 (no integer subtype): code asks it in a
 *            plain `if`, never an #if
 *   5.2      the above, user values of any type (5.2 takes tables only)
 *   LuaJIT   the above, lua_absindex, lua_rawlen, user values via fenv,
 *            no integer subtype (lua_isinteger is always false)
 *   5.1      the above, plus what LuaJIT 2.1 already backports from 5.2:
 *            luaL_newlib, luaL_setfuncs, luaL_setmetatable,
 *            luaL_testudata, lua_tointegerx
 *
 * LuaJIT 2.1 is told from plain 5.1 by a feature, not a name: its lauxlib.h
 * defines the luaL_newlib macro, together with the functions above.
 */
#ifndef TRUTO_COMPAT_H
#define TRUTO_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

/* ---- 5.1 without the 5.2 extras (PUC 5.1, LuaJIT 2.0) ------------------- */

#if LUA_VERSION_NUM < 502 && !defined(luaL_newlib)
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name; l++) {
        for (int i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#define luaL_setfuncs(L, l, n) compat_setfuncs((L), (l), (n))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))

static inline void compat_setmetatable(lua_State *L, const char *tname)
{
    luaL_getmetatable(L, tname);
    lua_setmetatable(L, -2);
}
#define luaL_setmetatable(L, t) compat_setmetatable((L), (t))

static inline void *compat_testudata(lua_State *L, int ud, const char *tname)
{
    void *p = lua_touserdata(L, ud);
    if (!p || !lua_getmetatable(L, ud))
        return NULL;
    luaL_getmetatable(L, tname);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}
#define luaL_testudata(L, i, t) compat_testudata((L), (i), (t))

static inline lua_Integer compat_tointegerx(lua_State *L, int idx, int *isnum)
{
    int ok = lua_isnumber(L, idx);
    if (isnum)
        *isnum = ok;
    return ok ? lua_tointeger(L, idx) : 0;
}
#define lua_tointegerx(L, i, n) compat_tointegerx((L), (i), (n))
#endif

/* ---- 5.1 and LuaJIT ----------------------------------------------------- */

#if LUA_VERSION_NUM < 502
static inline int compat_absindex(lua_State *L, int idx)
{
    return idx > 0 || idx <= LUA_REGISTRYINDEX ? idx : lua_gettop(L) + idx + 1;
}
#define lua_absindex(L, i) compat_absindex((L), (i))
#define lua_rawlen(L, i) lua_objlen((L), (i))
#endif

/* ---- 5.1, LuaJIT and 5.2: one user value of any type -------------------- */

#if LUA_VERSION_NUM < 503
/* The 5.1 environment (and the 5.2 user value) of a userdata must be a
 * table: the user value is kept at [1] of a one-slot table. */
static inline void compat_setuservalue(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_createtable(L, 1, 0);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
#if LUA_VERSION_NUM < 502
    lua_setfenv(L, idx);
#else
    (lua_setuservalue)(L, idx);
#endif
}

static inline void compat_getuservalue(lua_State *L, int idx)
{
#if LUA_VERSION_NUM < 502
    lua_getfenv(L, idx);
#else
    (lua_getuservalue)(L, idx);
#endif
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}
#define lua_setuservalue(L, i) compat_setuservalue((L), (i))
#define lua_getuservalue(L, i) compat_getuservalue((L), (i))

/* No integer subtype before 5.3: every number is a double. */
#define lua_isinteger(L, i) ((void)(L), (void)(i), 0)
#define COMPAT_INTEGERS 0
#else
#define COMPAT_INTEGERS 1 /* integers and floats are told apart */
#endif

/* ---- before 5.4 ---------------------------------------------------------- */

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, sz, nuv) ((void)(nuv), lua_newuserdata((L), (sz)))
#endif

#endif
