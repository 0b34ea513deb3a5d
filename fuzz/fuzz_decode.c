/*
 * fuzz_decode.c - the module's JSON decoding (tresp_decode:
 * tj_protect_bigints, cjson.decode, tj_normalize) on the input as text,
 * against plain cjson.decode of the same text.
 *
 * Invariants:
 *   - tresp_decode pushes exactly one value (the result or a message);
 *   - it accepts exactly the texts plain cjson accepts;
 *   - both give the same value, except that numbers may be more exact:
 *     a Lua integer n where cjson gave the double nearest to n;
 *   - every integral number in int64 range comes back as a Lua integer.
 */
#include "fuzz.h"
#include "strict_json.h"

#include "../src/response.h"

#include <math.h>
#include <string.h>

#define TWO63 9223372036854775808.0

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

/* Integral floats that fit a Lua integer should have become one. */
static void check_integers(lua_State *L, int idx, int depth)
{
    if (lua_type(L, idx) == LUA_TNUMBER && !lua_isinteger(L, idx)) {
        lua_Number d = lua_tonumber(L, idx);
        /* integer_from_float tests fabs(d) < 2^63, which leaves out -2^63
         * (finding "int-min-float"). */
        if (d == -TWO63 && fz_ignored("int-min-float"))
            return;
        FZ_CHECK(!(d == floor(d) && d >= -TWO63 && d < TWO63), "integral number %.17g left a float",
                 d);
    } else if (lua_type(L, idx) == LUA_TTABLE && depth < 1100) {
        luaL_checkstack(L, 4, "fuzz_decode walk");
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            check_integers(L, lua_gettop(L), depth + 1);
            lua_pop(L, 1);
        }
    }
}

/* Accept/reject disagreements on text that is not RFC 8259 JSON have
 * known causes; each is let through only when its tag is in FUZZ_IGNORE
 * (see README). On real JSON no disagreement is excused. */
static int known_mismatch(int plain_ok, const uint8_t *data, size_t size)
{
    if (sj_valid((const char *)data, size))
        return 0;
    /* scan_bigints reads a NUL byte as part of a number (strchr matches the
     * terminator): cjson takes "12345678901234567\0", we refuse it. */
    if (plain_ok && memchr(data, 0, size))
        return fz_ignored("bigint-nul-byte");
    /* cjson's own number leniency ("+1", "0x1F", "007") splits into tokens
     * that scan_bigints protects separately: "+00009900000999999999". */
    if (plain_ok)
        return fz_ignored("bigint-cjson-lenient");
    /* scan_bigints protects "12345678901234567-1" as one integer, and the
     * marker that fails to read back becomes nil: invalid JSON accepted. */
    return fz_ignored("bigint-lenient");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    int plain_ok = plain_decode(L, data, size);
    int plain = lua_gettop(L);

    int ok = tresp_decode(L, (const char *)data, size);
    FZ_CHECK(lua_gettop(L) == plain + 1, "tresp_decode pushed %d values", lua_gettop(L) - plain);
    if (ok != plain_ok && known_mismatch(plain_ok, data, size))
        ok = plain_ok = 0;
    FZ_CHECK(ok == plain_ok, "cjson %s the text but tresp_decode %s it (%s)",
             plain_ok ? "accepts" : "rejects", ok ? "accepts" : "rejects",
             lua_tostring(L, ok ? plain : -1));
    /* A number as the whole document is left unnormalized by tj_normalize
     * when given a relative index (finding "toplevel-number"). */
    if (ok && lua_type(L, plain) == LUA_TNUMBER && fz_ignored("toplevel-number"))
        ok = 0;
    if (ok) {
        FZ_CHECK(same_value(L, plain, plain + 1, 0), "tresp_decode and cjson disagree (%s vs %s)",
                 luaL_typename(L, plain + 1), luaL_typename(L, plain));
        check_integers(L, plain + 1, 0);
    }
    fz_reset(L);
    return 0;
}
