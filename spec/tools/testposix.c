/*
 * testposix.c - the few process calls the specs need and Debian's Lua 5.4
 * has no package for (lua-posix is built for 5.1-5.3 only):
 *   fork() -> pid (0 in the child)     wait(pid) -> exit status
 *   _exit(code)                        getpid() -> pid
 *   nomem(): raises Lua's memory error, the way a failed allocation does
 *            (asks for a 64 TiB userdata)
 * Built by `make test` into $(BUILD)/testposix.so; never installed.
 */
#include <lauxlib.h>
#include <lua.h>
#include <sys/wait.h>
#include <unistd.h>

int luaopen_testposix(lua_State *L);

static int l_fork(lua_State *L)
{
    lua_pushinteger(L, fork());
    return 1;
}

static int l_wait(lua_State *L)
{
    int status = 0;
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    if (waitpid(pid, &status, 0) < 0)
        return luaL_error(L, "waitpid failed");
    lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
    return 1;
}

static int l_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, getpid());
    return 1;
}

static int l_nomem(lua_State *L)
{
#if LUA_VERSION_NUM >= 504
    lua_newuserdatauv(L, (size_t)1 << 46, 0);
#else
    lua_newuserdata(L, (size_t)1 << 46);
#endif
    return 0;
}

int luaopen_testposix(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"fork", l_fork},     {"wait", l_wait},   {"_exit", l_exit},
        {"getpid", l_getpid}, {"nomem", l_nomem}, {NULL, NULL},
    };
    luaL_newlib(L, functions);
    return 1;
}
