/* json_encode.c - the strict JSON encoder (request bodies, truto.encode_json), see json.h. */
#include "json.h"
#include "json_cjson.h"
#include "value.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    lua_State *L;
    tbuf *out;
    tbuf *err;
    const char *root; /* the value's name in messages ("body"), or NULL */
    tbuf path;        /* where the value being written is: ".a[2].b" */
} jstate;

/* "body.a[2]: what detail" (the root's name, the path, then the reason). */
static int jfail(jstate *j, const char *what, const char *detail)
{
    tbuf_reset(j->err);
    const char *path = j->path.data ? j->path.data : "";
    size_t len = j->path.len;
    if (!j->root && len && path[0] == '.')
        path++, len--; /* no name: "a.b", not ".a.b" */
    if (j->root)
        tbuf_adds(j->err, j->root);
    tbuf_add(j->err, path, len);
    if (j->root || len)
        tbuf_adds(j->err, ": ");
    tbuf_adds(j->err, what);
    if (detail)
        tbuf_adds(j->err, detail);
    return 0;
}

static int is_name_char(unsigned char c, int first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

#define PATH_KEY_SHOWN 64 /* bytes of a key a message shows */

/* Appends ".key" to the path, or ["key"] for a key that is no plain name
 * (control bytes as \xHH, long keys cut). */
static void path_push_key(jstate *j, const char *key, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    int plain = len > 0 && len <= PATH_KEY_SHOWN;
    for (size_t i = 0; plain && i < len; i++)
        plain = is_name_char((unsigned char)key[i], i == 0);
    if (plain) {
        tbuf_addc(&j->path, '.');
        tbuf_add(&j->path, key, len);
        return;
    }
    tbuf_adds(&j->path, "[\"");
    for (size_t i = 0; i < len && i < PATH_KEY_SHOWN; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
            char esc[4] = {'\\', 'x', hex[c >> 4], hex[c & 15]};
            tbuf_add(&j->path, esc, sizeof esc);
        } else {
            tbuf_addc(&j->path, (char)c);
        }
    }
    tbuf_adds(&j->path, len > PATH_KEY_SHOWN ? "...\"]" : "\"]");
}

/* Appends "[i]" (the Lua index) to the path. */
static void path_push_index(jstate *j, size_t i)
{
    char num[32];
    snprintf(num, sizeof num, "[%zu]", i);
    tbuf_adds(&j->path, num);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    unsigned min;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2, min = 0x80, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3, min = 0x800, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4, min = 0x10000, cp = c & 0x07;
    else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static int encode_string(jstate *j, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    tbuf_addc(j->out, '"');
    for (size_t i = 0; i < len;) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            tbuf_addc(j->out, '\\');
            tbuf_addc(j->out, (char)c);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            tbuf_add(j->out, esc, 6);
            i++;
        } else {
            size_t n = utf8_sequence(p + i, len - i);
            if (!n)
                return jfail(j, "string is not valid UTF-8", NULL);
            tbuf_add(j->out, p + i, n);
            i += n;
        }
    }
    tbuf_addc(j->out, '"');
    return 1;
}

static int encode_any(jstate *j, int idx, int depth);

/* Whether idx is cjson.empty_array (a light userdata of lua-cjson's own). */
static int is_empty_array(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TLIGHTUSERDATA)
        return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_EMPTY_ARRAY);
    int same = lua_rawequal(L, -1, idx);
    lua_pop(L, 1);
    return same;
}

static int encode_array(jstate *j, int idx, size_t n, int depth)
{
    tbuf_addc(j->out, '[');
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            tbuf_addc(j->out, ',');
        lua_rawgeti(j->L, idx, (lua_Integer)i);
        size_t at = j->path.len;
        path_push_index(j, i);
        int ok = encode_any(j, lua_gettop(j->L), depth + 1);
        j->path.len = at;
        lua_pop(j->L, 1);
        if (!ok)
            return 0;
    }
    tbuf_addc(j->out, ']');
    return 1;
}

static int encode_object(jstate *j, int idx, size_t n, int depth)
{
    lua_State *L = j->L;
    tv_key *keys = tv_sorted_keys(L, idx, n);
    tbuf_addc(j->out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i)
            tbuf_addc(j->out, ',');
        if (!encode_string(j, keys[i].s, keys[i].len))
            return 0;
        tbuf_addc(j->out, ':');
        lua_pushlstring(L, keys[i].s, keys[i].len);
        lua_rawget(L, idx);
        size_t at = j->path.len;
        path_push_key(j, keys[i].s, keys[i].len);
        int ok = encode_any(j, lua_gettop(L), depth + 1);
        j->path.len = at;
        lua_pop(L, 1);
        if (!ok)
            return 0;
    }
    tbuf_addc(j->out, '}');
    lua_pop(L, 1); /* the sorted keys */
    return 1;
}

static int encode_table(jstate *j, int idx, int depth)
{
    if (depth >= TJ_MAX_DEPTH)
        return jfail(j, "body nested deeper than 32 levels (cyclic table?)", NULL);
    if (!lua_checkstack(j->L, 8))
        return jfail(j, "Lua stack exhausted", NULL);
    size_t n = 0;
    switch (tv_shape_of(j->L, idx, &n)) {
    case TV_EMPTY:
        tbuf_adds(j->out, tv_is_marked_array(j->L, idx) ? "[]" : "{}");
        return 1;
    case TV_ARRAY:
        return encode_array(j, idx, n, depth);
    case TV_MAP:
        if (tv_is_marked_array(j->L, idx))
            return jfail(j, "truto.array table has named keys", NULL);
        return encode_object(j, idx, n, depth);
    case TV_MIXED:
        return jfail(j, "table mixes array items and named keys", NULL);
    case TV_SPARSE:
        return jfail(j, "array has holes", NULL);
    default:
        return jfail(j, "table key must be a string or an array index", NULL);
    }
}

static int encode_any(jstate *j, int idx, int depth)
{
    lua_State *L = j->L;
    char num[TV_NUMBUF];
    size_t len;
    const char *s;
    long long big;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return encode_string(j, s, len);
    case LUA_TNUMBER:
        len = tv_format_number(L, idx, num);
        if (!len)
            return jfail(j, "NaN and infinity cannot be encoded", NULL);
        tbuf_add(j->out, num, len);
        return 1;
    case LUA_TBOOLEAN:
        tbuf_adds(j->out, lua_toboolean(L, idx) ? "true" : "false");
        return 1;
    case LUA_TTABLE:
        return encode_table(j, idx, depth);
    default:
        if (tv_is_null(L, idx)) {
            tbuf_adds(j->out, "null");
            return 1;
        }
        if (is_empty_array(L, idx)) {
            tbuf_adds(j->out, "[]");
            return 1;
        }
        if (tv_to_int64(L, idx, &big)) { /* the literal it was decoded from */
            snprintf(num, sizeof num, "%lld", big);
            tbuf_adds(j->out, num);
            return 1;
        }
        return jfail(j, luaL_typename(L, idx), " cannot be encoded as JSON");
    }
}

int tj_encode_named(lua_State *L, int idx, const char *root, tbuf *out, tbuf *err)
{
    jstate j = {L, out, err, root, {0}};
    tbuf_init(&j.path);
    int top = lua_gettop(L);
    int ok = encode_any(&j, lua_absindex(L, idx), 0);
    lua_settop(L, top);
    if (ok && out->oom) {
        j.path.len = 0;
        ok = jfail(&j, "out of memory", NULL);
    }
    tbuf_free(&j.path);
    return ok;
}

int tj_encode(lua_State *L, int idx, tbuf *out, tbuf *err)
{
    return tj_encode_named(L, idx, NULL, out, err);
}
