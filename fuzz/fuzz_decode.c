/*
 * fuzz_decode.c - the module's JSON decoding (fz_decode: json_decode.c and,
 * with Debian's lua-cjson, json_compat.c) on the input as text, against
 * plain cjson.decode of the same text.
 *
 * Invariants:
 *   - fz_decode pushes exactly one value (the result or a message);
 *   - on RFC 8259 JSON it accepts exactly the texts plain cjson accepts;
 *     elsewhere it may refuse more (its cjson instance refuses "+1", hex,
 *     leading zeros, NaN and infinity), never accept more;
 *   - both give the same value, except that numbers may be more exact:
 *     a Lua integer n where cjson gave the double nearest to n.
 * Integer or float subtypes and array marks are compared with the current
 * lua-cjson by fuzz_json_diff.
 */
#include "fuzz.h"
#include "strict_json.h"

#include "../src/json_cjson.h"
#include "../src/response.h"

#include <math.h>
#include <string.h>

static int plain_decode(lua_State *L, const uint8_t *data, size_t size)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_DECODE);
    lua_pushlstring(L, (const char *)data, size);
    return lua_pcall(L, 1, 1, 0) == 0;
}

/* Numbers: ours (at b) equals cjson's double (at a), or is the integer
 * that double rounds from. */
static int same_number(lua_State *L, int a, int b)
{
    lua_Number plain = lua_tonumber(L, a);
    if (lua_isinteger(L, b))
        return (lua_Number)lua_tointeger(L, b) == plain;
    lua_Number ours = lua_tonumber(L, b);
    return ours == plain || (isnan(ours) && isnan(plain));
}

static int same_value(lua_State *L, int a, int b, int depth);

/* Same keys, and same values under each key. */
static int same_table(lua_State *L, int a, int b, int depth)
{
    size_t na = 0, nb = 0;
    luaL_checkstack(L, 6, "fuzz_decode compare");
    lua_pushnil(L);
    while (lua_next(L, a)) {
        na++;
        lua_pushvalue(L, -2);
        lua_rawget(L, b);
        int ok = same_value(L, lua_gettop(L) - 1, lua_gettop(L), depth + 1);
        lua_pop(L, 2);
        if (!ok) {
            lua_pop(L, 1);
            return 0;
        }
    }
    lua_pushnil(L);
    while (lua_next(L, b)) {
        nb++;
        lua_pop(L, 1);
    }
    return na == nb;
}

static int same_value(lua_State *L, int a, int b, int depth)
{
    if (lua_type(L, a) != lua_type(L, b))
        return 0;
    switch (lua_type(L, a)) {
    case LUA_TNUMBER:
        return same_number(L, a, b);
    case LUA_TTABLE:
        return depth < 1100 && same_table(L, a, b, depth);
    default:
        return lua_rawequal(L, a, b);
    }
}

/* Where plain cjson and the module may disagree: text that is not RFC
 * 8259 JSON, which plain cjson takes by a number leniency the module's
 * instance turns off. The module never takes what plain cjson refuses. */
static int known_mismatch(int plain_ok, const uint8_t *data, size_t size)
{
    return plain_ok && !sj_valid((const char *)data, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    int plain_ok = plain_decode(L, data, size);
    int plain = lua_gettop(L);

    int ok = fz_decode(L, (const char *)data, size);
    FZ_CHECK(lua_gettop(L) == plain + 1, "fz_decode pushed %d values", lua_gettop(L) - plain);
    if (ok != plain_ok && known_mismatch(plain_ok, data, size))
        ok = plain_ok = 0;
    FZ_CHECK(ok == plain_ok, "cjson %s the text but fz_decode %s it (%s)",
             plain_ok ? "accepts" : "rejects", ok ? "accepts" : "rejects",
             lua_tostring(L, ok ? plain : -1));
    if (ok) {
        FZ_CHECK(same_value(L, plain, plain + 1, 0), "fz_decode and cjson disagree (%s vs %s)",
                 luaL_typename(L, plain + 1), luaL_typename(L, plain));
    }
    fz_reset(L);
    return 0;
}
