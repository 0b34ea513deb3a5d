/* json_decode.c - tj_decode: the text's checks, then one of the two decoding paths (lua-cjson
 * as it is, or json_compat.c above it), see json.h. */
#include "json.h"
#include "json_cjson.h"
#include "json_compat.h"
#include "json_scan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- options ----------------------------------------------------------- */

void tj_opts_check(lua_State *L, int idx, tj_opts *o)
{
    o->big_strings = 0;
    o->big_boxes = 0;
    o->max_values = 0;
    o->text_idx = 0;
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_getfield(L, idx, "big_integers");
    if (!lua_isnil(L, -1)) {
        const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "";
        if (strcmp(v, "string") != 0 && strcmp(v, "number") != 0 && strcmp(v, "int64") != 0)
            luaL_argerror(L, idx, "big_integers must be \"number\", \"string\", \"int64\" or nil");
        o->big_strings = v[0] == 's';
        /* Lua 5.3+ integers are exact already: "int64" is "number" there */
        o->big_boxes = v[0] == 'i' && !COMPAT_INTEGERS;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "max_values");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
        if (!(n >= 1 && n == floor(n)))
            luaL_argerror(L, idx, "max_values must be a positive integer or nil");
        o->max_values = n < 1e18 ? (size_t)n : (size_t)1e18;
    }
    lua_pop(L, 1);
}

/* Only 16+ digit runs can be integers past 2^53. */
static int has_long_digit_run(const char *s, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (++run >= 16)
                return 1;
        } else {
            run = 0;
        }
    }
    return 0;
}

/* tj_decode without the checks of the whole text; TJ_NOMEM when memory ran out. */
static int decode_text(lua_State *L, const char *s, size_t len, const tj_opts *o)
{
    const tj_caps *caps = tj_capabilities(L);
    if (!caps->array_mt || !caps->integers || o->big_boxes)
        return tjc_decode(L, s, len, o, caps);

    /* Current lua-cjson: its value as it is; the text is looked at only
     * for the options. Values need at least a byte each. */
    int count = o->max_values && len > o->max_values;
    if (!count && !(o->big_strings && has_long_digit_run(s, len)))
        return tj_cjson_decode(L, s, len, o->text_idx);
    tj_scan sc;
    memset(&sc, 0, sizeof sc);
    sc.big_strings = o->big_strings;
    sc.max_values = count ? o->max_values : 0;
    tbuf text;
    tbuf_init(&text);
    size_t edits = tj_scan_text(s, len, &sc, &text);
    int ok;
    if (sc.too_many) {
        tj_too_many(L, o->max_values);
        ok = 0;
    } else if (text.oom) {
        lua_pushliteral(L, "not enough memory");
        ok = TJ_NOMEM;
    } else {
        ok = edits ? tj_cjson_decode(L, text.data, text.len, 0)
                   : tj_cjson_decode(L, s, len, o->text_idx);
    }
    tbuf_free(&text);
    return ok;
}

int tj_decode(lua_State *L, const char *s, size_t len, const tj_opts *o)
{
    /* lua-cjson reads a NUL as the end of the text, so "{...}\0{...}"
     * would be the first document and no error. No JSON text holds a raw
     * NUL (in a string it must be escaped): refused wherever it is. */
    const char *nul = memchr(s, 0, len);
    if (nul) {
        char msg[80];
        snprintf(msg, sizeof msg, "unexpected NUL byte at character %zu", (size_t)(nul - s) + 1);
        lua_pushstring(L, msg);
        return 0;
    }
    int ok = decode_text(L, s, len, o);
    if (ok == TJ_NOMEM)
        lua_error(L); /* raised, as every other allocation failure of Lua is */
    return ok;
}
