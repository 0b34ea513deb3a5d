/* builder.c - fuzz bytes -> Lua value, see builder.h. */
#include "builder.h"

#include <math.h>
#include <string.h>

#define TRUTO_ARRAY_MT "truto.array" /* value.h; not included to stay off src/ internals */

typedef struct {
    lua_State *L;
    fz_reader *r;
    int nodes;
    int depth;
    int ancestors[FB_MAX_DEPTH]; /* stack indices of tables being filled */
} fbuild;

static void push_value(fbuild *b);

static void push_special_integer(lua_State *L, uint8_t pick)
{
    static const lua_Integer edge[] = {
        0,
        1,
        -1,
        LUA_MININTEGER,
        LUA_MAXINTEGER,
        9007199254740992LL,
        9007199254740993LL,
        -9007199254740993LL,
    };
    lua_pushinteger(L, edge[pick % (sizeof edge / sizeof edge[0])]);
}

static void push_special_float(lua_State *L, uint8_t pick)
{
    static const double edge[] = {
        NAN,
        INFINITY,
        -INFINITY,
        -0.0,
        0.5,
        1e300,
        9223372036854775808.0,
        -9223372036854775808.0,
        1.0,
        0.1,
        5e-324,
        9007199254740994.0,
    };
    lua_pushnumber(L, edge[pick % (sizeof edge / sizeof edge[0])]);
}

static void push_string(fbuild *b)
{
    size_t len;
    const char *s = fz_bytes(b->r, fz_byte(b->r), &len);
    lua_pushlstring(b->L, s, len);
}

/* Opens a new table on the stack and records it as an ancestor. */
static int open_table(fbuild *b)
{
    lua_newtable(b->L);
    int t = lua_gettop(b->L);
    b->ancestors[b->depth++] = t;
    return t;
}

static void close_table(fbuild *b)
{
    b->depth--;
}

static void push_array(fbuild *b, int marked)
{
    int count = fz_byte(b->r);
    int t = open_table(b);
    for (int i = 1; i <= count; i++) {
        push_value(b);
        lua_rawseti(b->L, t, i); /* a nil value leaves a hole */
    }
    if (marked)
        luaL_setmetatable(b->L, TRUTO_ARRAY_MT);
    close_table(b);
}

/* Fills a table from (key, value) pairs; keys are strings, or any value. */
static void push_keyed(fbuild *b, int any_key)
{
    int count = fz_byte(b->r);
    int t = open_table(b);
    for (int i = 0; i < count; i++) {
        if (any_key)
            push_value(b);
        else
            push_string(b);
        push_value(b);
        /* nil and NaN cannot be keys: drop the pair. */
        if (lua_isnil(b->L, -2) ||
            (lua_type(b->L, -2) == LUA_TNUMBER && isnan(lua_tonumber(b->L, -2))))
            lua_pop(b->L, 2);
        else
            lua_rawset(b->L, t);
    }
    close_table(b);
}

static void push_cycle(fbuild *b)
{
    uint8_t pick = fz_byte(b->r);
    if (b->depth == 0)
        lua_newtable(b->L);
    else
        lua_pushvalue(b->L, b->ancestors[pick % b->depth]);
}

/* Wraps the leaf in `levels` tables, without recursion. */
static void push_chain(fbuild *b)
{
    int levels = fz_byte(b->r) % 64;
    int as_array = fz_byte(b->r) & 1;
    push_value(b);
    for (int i = 0; i < levels; i++) {
        lua_createtable(b->L, 1, 1);
        lua_insert(b->L, -2);
        if (as_array)
            lua_rawseti(b->L, -2, 1);
        else
            lua_setfield(b->L, -2, "a");
    }
}

static int fn_noop(lua_State *L)
{
    (void)L;
    return 0;
}

/* Opcodes that build tables; refused past the limits. */
static int is_container(int op)
{
    return op == 7 || op == 8 || op == 9 || op == 11 || op == 13;
}

static void push_value(fbuild *b)
{
    lua_State *L = b->L;
    int op = fz_byte(b->r) % 16;
    luaL_checkstack(L, 8, "fuzz builder");
    b->nodes++;
    if (is_container(op) && (b->nodes > FB_MAX_NODES || b->depth >= FB_MAX_DEPTH))
        op = 0; /* a leaf instead */
    switch (op) {
    case 0:
        lua_pushinteger(L, (int8_t)fz_byte(b->r));
        break;
    case 1:
        lua_pushboolean(L, fz_byte(b->r) & 1);
        break;
    case 2:
        lua_pushinteger(L, (lua_Integer)fz_u64(b->r));
        break;
    case 3:
        push_special_integer(L, fz_byte(b->r));
        break;
    case 4: {
        uint64_t bits = fz_u64(b->r);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, d);
        break;
    }
    case 5:
        push_special_float(L, fz_byte(b->r));
        break;
    case 6:
        push_string(b);
        break;
    case 7:
        push_array(b, 0);
        break;
    case 8:
        push_keyed(b, 0);
        break;
    case 9:
        push_keyed(b, 1);
        break;
    case 10:
        push_cycle(b);
        break;
    case 11:
        push_chain(b);
        break;
    case 12:
        lua_pushlightuserdata(L, NULL);
        break;
    case 13:
        push_array(b, 1);
        break;
    case 14:
        lua_pushcfunction(L, fn_noop);
        break;
    default:
        lua_pushnil(L);
        break;
    }
}

void fb_push_value(lua_State *L, fz_reader *r)
{
    fbuild b = {L, r, 0, 0, {0}};
    push_value(&b);
}
