/*
 * fuzz_json_encode.c - tj_encode (strict request-body encoder) on values
 * built from the input (builder.h).
 *
 * Invariants:
 *   - failure: a non-empty message; the Lua stack is left as it was;
 *   - success: plain cjson.decode accepts the text;
 *   - decoding it the module's way (fz_decode: big integers kept exact,
 *     every array, empty ones too, marked) and encoding again gives the
 *     same bytes.
 */
#include "builder.h"
#include "fuzz.h"

#include "../src/buf.h"
#include "../src/json.h"
#include "../src/json_cjson.h"
#include "../src/response.h"

#include <string.h>

static int same(const tbuf *a, const tbuf *b)
{
    return a->len == b->len && (!a->len || memcmp(a->data, b->data, a->len) == 0);
}

/* cjson.decode(text) as the library would call it, through pcall. */
static void check_cjson_accepts(lua_State *L, const tbuf *text)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_DECODE);
    lua_pushlstring(L, text->data, text->len);
    FZ_CHECK(lua_pcall(L, 1, 1, 0) == 0, "cjson rejects our JSON (%s): %.*s", lua_tostring(L, -1),
             (int)text->len, text->data);
    lua_pop(L, 1);
}

static void check_round_trip(lua_State *L, const tbuf *text)
{
    tbuf again, err;
    tbuf_init(&again);
    tbuf_init(&err);
    FZ_CHECK(fz_decode(L, text->data, text->len), "fz_decode rejects our JSON (%s)",
             lua_tostring(L, -1));
    FZ_CHECK(tj_encode(L, -1, &again, &err), "decoded value does not encode again: %.*s",
             (int)err.len, err.data);
    lua_pop(L, 1);
    FZ_CHECK(same(text, &again), "round trip changed the text:\n  %.*s\n  %.*s", (int)text->len,
             text->data, (int)again.len, again.data);
    tbuf_free(&again);
    tbuf_free(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    fz_reader r = {data, size};
    tbuf out, err;
    tbuf_init(&out);
    tbuf_init(&err);

    fb_push_value(L, &r);
    FZ_KEEP_TOP(L);
    int ok = tj_encode(L, -1, &out, &err);
    FZ_SAME_TOP(L, "tj_encode");
    if (ok) {
        FZ_CHECK(out.len > 0, "empty JSON text");
        check_cjson_accepts(L, &out);
        check_round_trip(L, &out);
    } else {
        FZ_CHECK(err.len > 0, "tj_encode failed with an empty message");
    }
    tbuf_free(&out);
    tbuf_free(&err);
    fz_reset(L);
    return 0;
}
