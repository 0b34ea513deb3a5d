/* query.c - query string and path segment encoding, see query.h. */
#include "query.h"
#include "value.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    lua_State *L;
    tbuf *out;
    tbuf *err;
    tbuf key; /* the unescaped key of the value being written, e.g. "a[b][]" */
} qstate;

static const char HEX[] = "0123456789ABCDEF";

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

void tq_escape(tbuf *out, const char *s, size_t len)
{
    if (!tbuf_reserve(out, len * 3))
        return;
    char *p = out->data + out->len;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (is_unreserved(c)) {
            *p++ = (char)c;
        } else {
            *p++ = '%';
            *p++ = HEX[c >> 4];
            *p++ = HEX[c & 15];
        }
    }
    out->len = (size_t)(p - out->data);
}

static int fail(qstate *q, const char *what)
{
    tbuf_reset(q->err);
    if (q->key.len) {
        tbuf_add(q->err, q->key.data, q->key.len);
        tbuf_adds(q->err, ": ");
    }
    tbuf_adds(q->err, what);
    return 0;
}

static void emit(qstate *q, const char *value, size_t len)
{
    if (q->out->len)
        tbuf_addc(q->out, '&');
    tq_escape(q->out, q->key.data, q->key.len);
    tbuf_addc(q->out, '=');
    tq_escape(q->out, value, len);
}

static int encode_value(qstate *q, int idx, int depth);

static int encode_array(qstate *q, int idx, size_t n, int depth)
{
    size_t saved = q->key.len;
    tbuf_adds(&q->key, "[]");
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(q->L, idx, (lua_Integer)i);
        int ok = encode_value(q, lua_gettop(q->L), depth + 1);
        lua_pop(q->L, 1);
        if (!ok)
            return 0;
    }
    q->key.len = saved;
    return 1;
}

static int encode_map(qstate *q, int idx, size_t n, int depth)
{
    lua_State *L = q->L;
    tv_key *keys = tv_sorted_keys(L, idx, n);
    size_t saved = q->key.len;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].len == 0)
            return fail(q, "empty key cannot be encoded");
        if (depth == 0) {
            tbuf_add(&q->key, keys[i].s, keys[i].len);
        } else {
            tbuf_addc(&q->key, '[');
            tbuf_add(&q->key, keys[i].s, keys[i].len);
            tbuf_addc(&q->key, ']');
        }
        lua_pushlstring(L, keys[i].s, keys[i].len);
        lua_rawget(L, idx);
        int ok = encode_value(q, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
        if (!ok)
            return 0;
        q->key.len = saved;
    }
    lua_pop(L, 1); /* the sorted keys */
    return 1;
}

static int encode_table(qstate *q, int idx, int depth)
{
    if (depth >= TQ_MAX_DEPTH)
        return fail(q, "nested deeper than 16 levels (cyclic table?)");
    if (!lua_checkstack(q->L, 8))
        return fail(q, "Lua stack exhausted");
    size_t n = 0;
    switch (tv_shape_of(q->L, idx, &n)) {
    case TV_EMPTY:
        return 1;
    case TV_ARRAY:
        if (depth == 0)
            return fail(q, "params must be a table of named parameters, not an array");
        return encode_array(q, idx, n, depth);
    case TV_MAP:
        return encode_map(q, idx, n, depth);
    case TV_MIXED:
        return fail(q, "table mixes array items and named keys");
    case TV_SPARSE:
        return fail(q, "array has holes");
    default:
        return fail(q, "table key must be a string or an array index");
    }
}

static int encode_value(qstate *q, int idx, int depth)
{
    lua_State *L = q->L;
    char num[TV_NUMBUF];
    size_t len;
    const char *s;
    long long big;

    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        emit(q, s, len);
        return 1;
    case LUA_TNUMBER:
        len = tv_format_number(L, idx, num);
        if (!len)
            return fail(q, "NaN and infinity cannot be encoded");
        emit(q, num, len);
        return 1;
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, idx) ? "true" : "false";
        emit(q, s, strlen(s));
        return 1;
    case LUA_TTABLE:
        return encode_table(q, idx, depth);
    default:
        if (tv_is_null(L, idx))
            return 1; /* cjson.null: omitted, like nil */
        if (tv_to_int64(L, idx, &big)) {
            len = (size_t)snprintf(num, sizeof num, "%lld", big);
            emit(q, num, len);
            return 1;
        }
        tbuf_reset(q->err);
        fail(q, luaL_typename(L, idx));
        tbuf_adds(q->err, " cannot be encoded");
        return 0;
    }
}

int tq_encode(lua_State *L, int idx, tbuf *out, tbuf *err)
{
    qstate q = {L, out, err, {0}};
    tbuf_init(&q.key);
    idx = lua_absindex(L, idx);
    int top = lua_gettop(L);
    int ok = lua_type(L, idx) == LUA_TTABLE ? encode_table(&q, idx, 0)
                                            : fail(&q, "params must be a table");
    lua_settop(L, top);
    int oom = out->oom || q.key.oom; /* the key buffer builds every name */
    tbuf_free(&q.key);
    if (ok && oom)
        return fail(&q, "out of memory");
    return ok;
}

int tq_segment(lua_State *L, int idx, tbuf *out, tbuf *err)
{
    char num[TV_NUMBUF];
    size_t len;
    const char *s;
    long long big;

    tbuf_reset(err);
    if (tv_to_int64(L, idx, &big)) {
        len = (size_t)snprintf(num, sizeof num, "%lld", big);
        s = num;
    } else if (lua_type(L, idx) == LUA_TSTRING) {
        s = lua_tolstring(L, idx, &len);
        if (len == 0) {
            tbuf_adds(err, "id must not be empty");
            return 0;
        }
    } else if (lua_type(L, idx) == LUA_TNUMBER) {
        len = tv_format_number(L, idx, num);
        if (!len || strpbrk(num, ".e")) {
            tbuf_adds(err, "string or integer id expected, got non-integral number");
            return 0;
        }
        s = num;
    } else {
        tbuf_adds(err, "string or integer id expected, got ");
        tbuf_adds(err, tv_typename(L, idx));
        return 0;
    }
    /* "." and ".." would be dot segments, which a server (or a client
     * library) removes: escaped, they stay one segment naming the id. */
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        tbuf_adds(out, len == 1 ? "%2E" : "%2E%2E");
    else
        tq_escape(out, s, len);
    if (out->oom) {
        tbuf_adds(err, "out of memory");
        return 0;
    }
    return 1;
}
