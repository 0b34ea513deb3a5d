/*
 * compat.h - the one place where Lua version differences live.
 *
 * The module is written against the Lua 5.4 C API; this header supplies
 * what 5.1 (LuaJIT) and 5.3 lack, so no other file needs an #if on
 * LUA_VERSION_NUM.
 */
#ifndef TRUTO_COMPAT_H
#define TRUTO_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_register((L), NULL, (l)))
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
#define lua_setuservalue(L, i) lua_setfenv((L), (i))
#define lua_getuservalue(L, i) lua_getfenv((L), (i))
#endif

#if LUA_VERSION_NUM < 503
/* No integer subtype: every number is a double. */
#define lua_isinteger(L, i) 0
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, sz, nuv) lua_newuserdata((L), (sz))
#endif

#endif
