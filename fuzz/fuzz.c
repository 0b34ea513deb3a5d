/* fuzz.c - shared harness pieces, see fuzz.h. */
#include "fuzz.h"
#include "../src/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where Debian installs lua-cjson; the Makefile passes the multiarch path. */
#ifndef FZ_CJSON_CPATH
#define FZ_CJSON_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
#endif

int luaopen_truto_core(lua_State *L); /* truto.c; no header declares it */

static int open_core(lua_State *L)
{
    /* Put Debian's cjson first on the path so require finds it whatever
     * LUA_CPATH says; luaopen_truto_core requires it and caches decode. */
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s;", FZ_CJSON_CPATH);
    lua_getfield(L, -2, "cpath");
    lua_concat(L, 2);
    lua_setfield(L, -2, "cpath");
    lua_pop(L, 1);
    luaL_requiref(L, "truto.core", luaopen_truto_core, 0);
    lua_setfield(L, LUA_REGISTRYINDEX, FZ_CORE);
    return 0;
}

int fz_decode(lua_State *L, const char *s, size_t len)
{
    tj_opts o;
    memset(&o, 0, sizeof o);
    return tj_decode(L, s, len, &o);
}

lua_State *fz_lua(void)
{
    static lua_State *L;
    if (L)
        return L;
    L = luaL_newstate();
    if (!L)
        fz_fail("luaL_newstate failed");
    luaL_openlibs(L);
    lua_pushcfunction(L, open_core);
    if (lua_pcall(L, 0, 0, 0) != 0)
        fz_fail("loading truto.core: %s", lua_tostring(L, -1));
    return L;
}

void fz_core_fn(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, FZ_CORE);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    FZ_CHECK(lua_isfunction(L, -1), "truto.core.%s is not a function", name);
}

void fz_gc_stress(lua_State *L)
{
    /* Incremental mode with pause 0 (1 / 4 rounds down) and a step size
     * past log2(max l_mem): every luaC_checkGC runs a whole cycle. The
     * pause only applies from the end of a cycle, hence the collection. */
    lua_gc(L, LUA_GCINC, 1, 100, 63);
    lua_gc(L, LUA_GCCOLLECT, 0);
}

void fz_reset(lua_State *L)
{
    static unsigned runs;
    lua_settop(L, 0);
    lua_gc(L, LUA_GCINC, 200, 100, 13); /* Lua 5.4's defaults */
    if (++runs % 4096 == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
}

void fz_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("\n*** truto fuzz invariant broken: ", stderr);
    /* clang-analyzer 14 takes ap for uninitialized when a call passes no
     * variadic argument; it is not. */
    vfprintf(stderr, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    fputs("\n", stderr);
    fflush(stderr);
    abort();
}

int fz_ignored(const char *tag)
{
    const char *list = getenv("FUZZ_IGNORE");
    size_t n = strlen(tag);
    while (list && *list) {
        const char *end = strchr(list, ',');
        size_t len = end ? (size_t)(end - list) : strlen(list);
        if (len == n && memcmp(list, tag, n) == 0)
            return 1;
        list = end ? end + 1 : NULL;
    }
    return 0;
}

uint8_t fz_byte(fz_reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

uint64_t fz_u64(fz_reader *r)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)fz_byte(r) << (8 * i);
    return v;
}

const char *fz_bytes(fz_reader *r, size_t max, size_t *len)
{
    const char *s = (const char *)r->p;
    *len = max < r->n ? max : r->n;
    r->p += *len;
    r->n -= *len;
    return s;
}

const char *fz_until_nul(fz_reader *r, size_t *len)
{
    const char *s = (const char *)r->p;
    const uint8_t *nul = memchr(r->p, 0, r->n);
    *len = nul ? (size_t)(nul - r->p) : r->n;
    r->p += *len;
    r->n -= *len;
    if (r->n) { /* the NUL itself */
        r->p++;
        r->n--;
    }
    return s;
}
