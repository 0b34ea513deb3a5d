/* json_cjson.c - the bridge to lua-cjson: the private instance, what it can do, and one
 * protected call of its decode, see json_cjson.h. */
#include "json_cjson.h"
#include "value.h"

#include <string.h>

#define TRUTO_JSON_CAPS "truto.json.caps"

int tj_cjson_decode(lua_State *L, const char *s, size_t len, int idx)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_DECODE);
    if (idx)
        lua_pushvalue(L, idx);
    else
        lua_pushlstring(L, s, len);
    /* cjson raises on bad input; catch it so a bad text is a value, not a
     * throw. Running out of memory is no fault of the text: told apart.
     * lua-cjson 2.1.0 learns the decimal point when it is loaded and then
     * calls strtod: in the "C" locale, a later os.setlocale changes nothing. */
    tv_c_numeric c;
    tv_c_numeric_enter(&c);
    int rc = lua_pcall(L, 1, 1, 0);
    tv_c_numeric_leave(&c);
    return rc == 0 ? 1 : rc == LUA_ERRMEM ? TJ_NOMEM : 0; /* 0: LUA_OK, which 5.1 lacks */
}

static tj_caps no_caps;

const tj_caps *tj_capabilities(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_JSON_CAPS);
    const tj_caps *caps = lua_touserdata(L, -1);
    lua_pop(L, 1); /* the registry keeps it alive */
    return caps ? caps : &no_caps;
}

/* ---- what lua-cjson can do --------------------------------------------- */

/* Calls t[name](args on the stack) protected; leaves one result or nil. */
static int try_call(lua_State *L, int t, const char *name, int nargs)
{
    lua_getfield(L, t, name);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1 + nargs);
        lua_pushnil(L);
        return 0;
    }
    lua_insert(L, -1 - nargs);
    if (lua_pcall(L, nargs, 1, 0) != 0) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return 0;
    }
    return 1;
}

/* Whether the table at idx has the metatable at mt. */
static int has_mt(lua_State *L, int idx, int mt)
{
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    int same = lua_rawequal(L, -1, mt);
    lua_pop(L, 1);
    return same;
}

static int detect_array_mt(lua_State *L, int inst, int mt)
{
    lua_pushboolean(L, 1);
    try_call(L, inst, "decode_array_with_array_mt", 1);
    lua_pop(L, 1);
    lua_pushliteral(L, "[[],[1],{}]");
    if (lua_isnil(L, mt) || !try_call(L, inst, "decode", 1)) {
        lua_pop(L, 1);
        return 0;
    }
    int t = lua_gettop(L);
    int ok = has_mt(L, t, mt);
    for (int i = 1; i <= 3; i++) {
        lua_rawgeti(L, t, i);
        ok = ok && (i < 3 ? has_mt(L, -1, mt) : !lua_getmetatable(L, -1));
        lua_settop(L, t);
    }
    lua_pop(L, 1);
    return ok;
}

static int detect_integers(lua_State *L, int inst)
{
    static const lua_Integer want[] = {9007199254740993LL, -9223372036854775807LL - 1, 1};
    if (!COMPAT_INTEGERS)
        return 1; /* no integer type: every lua-cjson gives the same doubles */
    lua_pushliteral(L, "[9007199254740993,-9223372036854775808,1]");
    if (!try_call(L, inst, "decode", 1) || !lua_istable(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    int ok = 1;
    for (int i = 0; i < 3; i++) {
        lua_rawgeti(L, -1, i + 1);
        ok = ok && lua_isinteger(L, -1) && lua_tointeger(L, -1) == want[i];
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return ok;
}

void tj_init(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    int cjson = lua_gettop(L);

    /* A private instance, so no setting of ours reaches other cjson users. */
    lua_getfield(L, cjson, "new");
    if (lua_isfunction(L, -1)) {
        lua_call(L, 0, 1);
    } else {
        lua_pop(L, 1);
        lua_pushvalue(L, cjson);
    }
    int inst = lua_gettop(L);
    if (!lua_rawequal(L, inst, cjson)) {
        /* RFC 8259 numbers only: no hex, NaN or infinity */
        lua_pushboolean(L, 0);
        try_call(L, inst, "decode_invalid_numbers", 1);
        lua_pop(L, 1);
    }
    lua_getfield(L, inst, "decode");
    if (!lua_isfunction(L, -1))
        luaL_error(L, "truto: cjson.decode not found");
    lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_DECODE);

    /* The array metatable: lua-cjson's where it has one, else ours. */
    lua_getfield(L, cjson, "array_mt");
    if (lua_istable(L, -1)) {
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_ARRAY_MT);
    } else {
        lua_pop(L, 1);
        luaL_newmetatable(L, TRUTO_ARRAY_MT);
    }
    int mt = lua_gettop(L);
    lua_getfield(L, cjson, "empty_array_mt");
    lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_EMPTY_ARRAY_MT);
    lua_getfield(L, cjson, "empty_array");
    if (lua_type(L, -1) == LUA_TLIGHTUSERDATA)
        lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_EMPTY_ARRAY);
    else
        lua_pop(L, 1);

    tj_caps *caps = lua_newuserdatauv(L, sizeof *caps, 0);
    caps->array_mt = detect_array_mt(L, inst, mt);
    caps->integers = detect_integers(L, inst);
    lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_JSON_CAPS);
    lua_settop(L, cjson - 1);
}

int tj_info(lua_State *L)
{
    const tj_caps *caps = tj_capabilities(L);
    lua_createtable(L, 0, 3);
    lua_pushboolean(L, caps->array_mt);
    lua_setfield(L, -2, "array_mt");
    lua_pushboolean(L, caps->integers);
    lua_setfield(L, -2, "integers");
    lua_pushboolean(L, !caps->array_mt || !caps->integers);
    lua_setfield(L, -2, "compat");
    return 1;
}
