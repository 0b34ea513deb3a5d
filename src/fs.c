/*
 * fs.c - durable writes, exclusive creates and process checks, see fs.h.
 *
 *   write_durable(path, data)     -> true | nil, message   (O_TRUNC, fsync)
 *   create_exclusive(path, data)  -> true | nil, message, "exists" (whole: temp + link)
 *   fsync_dir(path)               -> true | nil, message
 *   getpid()                      -> integer
 *   pid_alive(pid)                -> boolean
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

static int fail(lua_State *L, const char *what, const char *path, int err)
{
    lua_pushnil(L);
    lua_pushfstring(L, "%s %s: %s", what, path, strerror(err));
    return 2;
}

/* Writes all of data to fd, fsyncs and closes it. 0 or an errno. */
static int write_all(int fd, const char *data, size_t len)
{
    size_t done = 0;
    int err = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        done += (size_t)n;
    }
    if (err == 0 && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && err == 0)
        err = errno;
    return err;
}

static int l_write_durable(lua_State *L)
{
    size_t len;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(L, "write", path, errno);
    int err = write_all(fd, data, len);
    if (err != 0)
        return fail(L, "write", path, err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Writes data to a temporary file beside path, then links it as path: the
 * file appears whole or not at all (a reader never sees it half written),
 * and only if no file of that name exists. */
static int l_create_exclusive(lua_State *L)
{
    size_t len;
    const char *path = luaL_checkstring(L, 1);
    const char *data = luaL_checklstring(L, 2, &len);
    lua_pushfstring(L, "%s.new.%d", path, (int)getpid());
    const char *tmp = lua_tostring(L, -1);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return fail(L, "create", tmp, errno);
    int err = write_all(fd, data, len);
    if (err == 0 && link(tmp, path) != 0)
        err = errno;
    unlink(tmp);
    if (err != 0) {
        fail(L, "create", path, err);
        if (err == EEXIST) {
            lua_pushliteral(L, "exists");
            return 3;
        }
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* After a rename: makes the directory entry itself durable. */
static int l_fsync_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fail(L, "open", path, errno);
    int err = fsync(fd) == 0 ? 0 : errno;
    close(fd);
    if (err != 0 && err != EINVAL) /* some file systems cannot sync a directory */
        return fail(L, "fsync", path, err);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

/* Whether a process with this id exists (EPERM: it does, another user's). */
static int l_pid_alive(lua_State *L)
{
    lua_Integer pid = luaL_checkinteger(L, 1);
    if (pid <= 0 || pid > (lua_Integer)0x7fffffff) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int alive = kill((pid_t)pid, 0) == 0 || errno == EPERM;
    lua_pushboolean(L, alive);
    return 1;
}

void tfs_register(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"write_durable", l_write_durable}, {"create_exclusive", l_create_exclusive},
        {"fsync_dir", l_fsync_dir},         {"getpid", l_getpid},
        {"pid_alive", l_pid_alive},         {NULL, NULL},
    };
    luaL_setfuncs(L, functions, 0);
}
