/*
 * fuzz_pager.c - one core.pager() fed a sequence of pages, checked step by
 * step against a model of the rules in pager.h.
 *
 * Input: a length byte and that many bytes of start cursor (length 0: no
 * start cursor), then JSON pages separated by NUL bytes. Each page is
 * decoded the module's way (fz_decode); one that does not decode is fed
 * as cjson's message, a string.
 *
 * Invariants, after every feed: the answer is (result, keyed) or
 * (nil, kind, message) exactly as the model says; once done, every feed is
 * refused with "loop"; a cursor seen before (the start cursor included)
 * gives "loop" and ends the walk; cursor(), done() and pages() agree with
 * the model.
 */
#include "fuzz.h"

#include "../src/response.h"

#include <string.h>

/* The model: what the pager should know. Its seen set and cursor are
 * Lua values at fixed stack slots. */
typedef struct {
    int done;
    lua_Integer pages;
    long empty_run; /* empty pages in a row: 100 of them end the walk */
    int seen;       /* stack index of { [cursor] = true } */
    int cursor;     /* stack index of the next cursor, nil when none */
    int pager;      /* stack index of the pager */
} model;

/* Calls pager:<method>(args...) with the nargs values on top; leaves
 * LUA_MULTRET results and returns how many. */
static int call_method(lua_State *L, int pager, const char *method, int nargs)
{
    int base = lua_gettop(L) - nargs;
    lua_getfield(L, pager, method);
    lua_pushvalue(L, pager);
    lua_rotate(L, base + 1, 2); /* method, pager before the args */
    FZ_CHECK(lua_pcall(L, nargs + 1, LUA_MULTRET, 0) == 0, "pager:%s raised: %s", method,
             lua_tostring(L, -1));
    return lua_gettop(L) - base;
}

static void expect_refusal(lua_State *L, int nret, const char *kind)
{
    FZ_CHECK(nret == 3, "feed gave %d values, expected nil, \"%s\", message", nret, kind);
    FZ_CHECK(lua_isnil(L, -3), "feed accepted a page that should give \"%s\"", kind);
    const char *got = lua_tostring(L, -2);
    FZ_CHECK(got && strcmp(got, kind) == 0, "feed refused with \"%s\", expected \"%s\"",
             got ? got : "(not a string)", kind);
    FZ_CHECK(lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) > 0, "refusal has no message");
}

/* Whether the result table at idx is keyed: JSON objects have string keys. */
static int has_string_key(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

static void expect_page(lua_State *L, int nret, int result)
{
    FZ_CHECK(nret == 2, "feed gave %d values for an accepted page", nret);
    FZ_CHECK(lua_rawequal(L, -2, result), "feed returned something else than page.result");
    FZ_CHECK(lua_type(L, -1) == LUA_TBOOLEAN, "keyed is not a boolean");
    FZ_CHECK(lua_toboolean(L, -1) == has_string_key(L, result), "keyed is wrong");
}

/* Takes the next cursor from the top of the stack: "loop" if seen before
 * (the walk ends), else NULL, with the cursor recorded as seen and next. */
static const char *model_cursor(lua_State *L, model *m)
{
    lua_pushvalue(L, -1);
    int seen = lua_rawget(L, m->seen) != LUA_TNIL;
    lua_pop(L, 1);
    if (seen) {
        lua_pop(L, 1);
        m->done = 1;
        return "loop";
    }
    lua_pushvalue(L, -1);
    lua_pushboolean(L, 1);
    lua_rawset(L, m->seen);
    lua_replace(L, m->cursor);
    return NULL;
}

/* What the model expects for the page at idx: NULL for acceptance (and the
 * model updated), else the refusal kind. Leaves page.result on the stack. */
static const char *model_feed(lua_State *L, model *m, int page)
{
    lua_pushnil(L); /* page.result, when there is one */
    if (m->done)
        return "loop";
    if (lua_type(L, page) != LUA_TTABLE)
        return "decode";
    lua_getfield(L, page, "result");
    lua_replace(L, -2);
    if (lua_type(L, -1) != LUA_TTABLE)
        return "decode";
    lua_getfield(L, page, "next_cursor");
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1)) ||
        (t == LUA_TSTRING && lua_rawlen(L, -1) == 0)) {
        m->done = 1; /* null, missing or empty: the last page */
        lua_pushnil(L);
        lua_replace(L, m->cursor);
        lua_pop(L, 1);
    } else if (t != LUA_TSTRING) {
        lua_pop(L, 1);
        return "decode";
    } else if (lua_rawlen(L, -1) > 8192) {
        lua_pop(L, 1);
        m->done = 1;
        return "decode";
    } else if (model_cursor(L, m)) {
        return "loop";
    }
    m->pages++;
    lua_pushnil(L);
    int empty = !lua_next(L, -2);
    if (!empty)
        lua_pop(L, 2);
    m->empty_run = empty ? m->empty_run + 1 : 0;
    if (empty && !m->done && m->empty_run >= 100) {
        m->done = 1;
        return "loop";
    }
    return NULL;
}

/* cursor(), done() and pages() against the model. */
static void check_state(lua_State *L, const model *m)
{
    FZ_KEEP_TOP(L);
    call_method(L, m->pager, "cursor", 0);
    FZ_CHECK(m->done ? lua_isnil(L, -1) : lua_rawequal(L, -1, m->cursor),
             "cursor() is not the next cursor");
    call_method(L, m->pager, "done", 0);
    FZ_CHECK(lua_toboolean(L, -1) == m->done, "done() is %d, expected %d", lua_toboolean(L, -1),
             m->done);
    call_method(L, m->pager, "pages", 0);
    FZ_CHECK(lua_tointeger(L, -1) == m->pages, "pages() is %lld, expected %lld",
             (long long)lua_tointeger(L, -1), (long long)m->pages);
    lua_pop(L, 3);
    FZ_SAME_TOP(L, "check_state");
}

static void feed_one(lua_State *L, model *m, const char *text, size_t len)
{
    int top = lua_gettop(L);
    fz_decode(L, text, len); /* the value, or cjson's message */
    int page = lua_gettop(L);
    const char *refusal = model_feed(L, m, page);
    int result = lua_gettop(L);
    lua_pushvalue(L, page);
    int nret = call_method(L, m->pager, "feed", 1);
    if (refusal)
        expect_refusal(L, nret, refusal);
    else
        expect_page(L, nret, result);
    lua_settop(L, top);
    check_state(L, m);
}

/* The start cursor may hold any bytes, NUL included. */
static void start_pager(lua_State *L, model *m, fz_reader *r)
{
    size_t len;
    const char *start = fz_bytes(r, fz_byte(r), &len);
    /* tpager_new reads the start cursor as a C string, so it stops at a NUL
     * byte (finding "start-cursor-nul"). */
    if (memchr(start, 0, len) && fz_ignored("start-cursor-nul"))
        len = strnlen(start, len);
    lua_newtable(L);
    m->seen = lua_gettop(L);
    fz_core_fn(L, "pager");
    if (len) {
        lua_pushlstring(L, start, len);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, m->seen);
        lua_insert(L, -2);
        lua_pushvalue(L, -2);
        FZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "core.pager raised: %s", lua_tostring(L, -1));
    } else {
        lua_pushnil(L);
        lua_insert(L, -2);
        FZ_CHECK(lua_pcall(L, 0, 1, 0) == 0, "core.pager raised: %s", lua_tostring(L, -1));
    }
    m->cursor = lua_gettop(L) - 1;
    m->pager = lua_gettop(L);
    m->done = 0;
    m->pages = 0;
    m->empty_run = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    fz_reader r = {data, size};
    model m;
    start_pager(L, &m, &r);
    check_state(L, &m);
    while (r.n) {
        size_t len;
        const char *page = fz_until_nul(&r, &len);
        feed_one(L, &m, page, len);
    }
    fz_reset(L);
    return 0;
}
