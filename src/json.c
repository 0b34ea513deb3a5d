/* json.c - body encoding and number fix-ups around lua-cjson, see json.h. */
#include "json.h"
#include "value.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- encoding ---------------------------------------------------------- */

typedef struct {
    lua_State *L;
    tbuf *out;
    tbuf *err;
} jstate;

static int jfail(jstate *j, const char *what, const char *detail)
{
    tbuf_reset(j->err);
    tbuf_adds(j->err, what);
    if (detail)
        tbuf_adds(j->err, detail);
    return 0;
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

static int encode_array(jstate *j, int idx, size_t n, int depth)
{
    tbuf_addc(j->out, '[');
    for (size_t i = 1; i <= n; i++) {
        if (i > 1)
            tbuf_addc(j->out, ',');
        lua_rawgeti(j->L, idx, (lua_Integer)i);
        int ok = encode_any(j, lua_gettop(j->L), depth + 1);
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
        int ok = encode_any(j, lua_gettop(L), depth + 1);
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
        return jfail(j, luaL_typename(L, idx), " cannot be encoded as JSON");
    }
}

int tj_encode(lua_State *L, int idx, tbuf *out, tbuf *err)
{
    jstate j = {L, out, err};
    int top = lua_gettop(L);
    int ok = encode_any(&j, lua_absindex(L, idx), 0);
    lua_settop(L, top);
    if (ok && out->oom)
        return jfail(&j, "out of memory", NULL);
    return ok;
}

/* ---- big integers ------------------------------------------------------ */

/* The marker cjson decodes to "\0i:<digits>"; JSON text can contain the
 * same string only through "\u0000", and we do not rewrite such bodies. */
#define MARKER "\"\\u0000i:"
#define MARKER_PREFIX "\0i:"
#define MARKER_PREFIX_LEN 3

/* Integers of 16+ digits may exceed 2^53; only those are worth a look. */
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

/* Whether the integer literal [s, s+len) is exact in int64 but not in a double. */
static int needs_protection(const char *s, size_t len)
{
    char tmp[24];
    size_t digits = len - (s[0] == '-');
    if (digits < 16 || len >= sizeof tmp)
        return 0;
    memcpy(tmp, s, len);
    tmp[len] = 0;
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == ERANGE)
        return 0;
    return v > 9007199254740992LL || v < -9007199254740992LL;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Where a number token stands: enough of the JSON grammar to know that a
 * token is a value (top level, array element, or after a key's ':'), never
 * an object key, which no marker may turn into a valid string. */
typedef struct {
    char open[TJ_SCAN_DEPTH]; /* '[' or '{' for each enclosing container */
    size_t depth;
    char prev; /* the last structural byte outside strings, 0 at the start */
} jscan;

static void note_structure(jscan *j, char c)
{
    if (c == '[' || c == '{') {
        if (j->depth < TJ_SCAN_DEPTH)
            j->open[j->depth] = c;
        j->depth++;
    } else if ((c == ']' || c == '}') && j->depth > 0) {
        j->depth--;
    }
    j->prev = c;
}

static int at_value_position(const jscan *j)
{
    if (j->depth == 0)
        return j->prev == 0;
    if (j->depth > TJ_SCAN_DEPTH)
        return 0; /* too deep to know: leave it to cjson */
    if (j->open[j->depth - 1] == '[')
        return j->prev == '[' || j->prev == ',';
    return j->prev == ':';
}

/* Length of the strict JSON integer at s (-?(0|[1-9][0-9]*)) when the number
 * token there is exactly that, else 0. */
static size_t json_integer(const char *s, size_t len)
{
    size_t i = s[0] == '-';
    if (i >= len || !is_digit(s[i]) || (s[i] == '0' && i + 1 < len && is_digit(s[i + 1])))
        return 0;
    while (i < len && is_digit(s[i]))
        i++;
    /* a fraction, exponent or stray sign makes it something else */
    if (i < len && (s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-' ||
                    s[i] == 'x' || s[i] == 'X'))
        return 0;
    return i;
}

/* Walks the JSON text outside strings and finds the integer literals that
 * need protection; with out, writes the protected text there. Returns how
 * many it found. Sets *ambiguous when a string of the text itself starts
 * like a marker, so that markers could not be told from data. */
static size_t scan_bigints(const char *s, size_t len, tbuf *out, int *ambiguous)
{
    size_t found = 0, copied = 0, i = 0;
    jscan j;
    j.depth = 0;
    j.prev = 0;
    while (i < len) {
        char c = s[i];
        if (c == '"') {
            if (len - i > 9 && memcmp(s + i + 1, &MARKER[1], 8) == 0)
                *ambiguous = 1;
            for (i++; i < len && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            j.prev = '"';
        } else if (c == '-' || is_digit(c)) {
            size_t start = i, n = json_integer(s + i, len - i);
            if (n && at_value_position(&j) && needs_protection(s + start, n)) {
                found++;
                if (out) {
                    tbuf_add(out, s + copied, start - copied);
                    tbuf_adds(out, MARKER);
                    tbuf_add(out, s + start, n);
                    tbuf_addc(out, '"');
                    copied = start + n;
                }
            }
            /* skip the whole number token, whatever it is */
            for (i++; i < len && (is_digit(s[i]) || (s[i] && strchr(".eE+-xX", s[i]))); i++)
                ;
            j.prev = '0';
        } else {
            if (c == '[' || c == '{' || c == ']' || c == '}' || c == ',' || c == ':')
                note_structure(&j, c);
            else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
                j.prev = c; /* true, false, null, or junk cjson will refuse */
            i++;
        }
    }
    if (out && found)
        tbuf_add(out, s + copied, len - copied);
    return found;
}

int tj_protect_bigints(const char *text, size_t len, tbuf *out)
{
    int ambiguous = 0;
    if (!has_long_digit_run(text, len))
        return 0;
    /* a raw NUL could start a string that reads like a marker, too */
    if (memchr(text, '\0', len) || !scan_bigints(text, len, NULL, &ambiguous) || ambiguous)
        return 0;
    tbuf_reset(out);
    scan_bigints(text, len, out, &ambiguous);
    return !out->oom;
}

/* ---- normalizing decoded values ---------------------------------------- */

/* Replaces the number on top of the stack by an integer when it is one.
 * Returns whether it did. */
static int integer_from_float(lua_State *L)
{
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, -1))
        return 0;
    lua_Number d = lua_tonumber(L, -1);
    if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
        return 0;
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)d);
    return 1;
#else
    (void)L;
    return 0; /* no integer subtype: numbers stay doubles */
#endif
}

/* Replaces a marker string on top of the stack by its number. */
static int integer_from_marker(lua_State *L)
{
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    char digits[32];
    if (len <= MARKER_PREFIX_LEN || len - MARKER_PREFIX_LEN >= sizeof digits ||
        memcmp(s, MARKER_PREFIX, MARKER_PREFIX_LEN) != 0)
        return 0;
    memcpy(digits, s + MARKER_PREFIX_LEN, len - MARKER_PREFIX_LEN);
    digits[len - MARKER_PREFIX_LEN] = 0;
    lua_pop(L, 1);
#if LUA_VERSION_NUM >= 503
    if (!lua_stringtonumber(L, digits))
        lua_pushnil(L);
#else
    lua_pushnumber(L, strtod(digits, NULL));
#endif
    return 1;
}

/* Normalizes the value on top of the stack; returns whether it was
 * replaced (tables are changed in place and never replaced). */
static int normalize_value(lua_State *L, int markers, int depth)
{
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        return integer_from_float(L);
    case LUA_TSTRING:
        return markers && integer_from_marker(L);
    case LUA_TTABLE:
        if (depth >= 1000)
            return 0; /* cjson refuses deeper documents anyway */
        luaL_checkstack(L, 4, "JSON nested too deeply");
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (normalize_value(L, markers, depth + 1)) {
                lua_pushvalue(L, -2); /* table key value key */
                lua_insert(L, -2);    /* table key key value */
                lua_rawset(L, -4);    /* assigning an existing key is safe in next() */
            } else {
                lua_pop(L, 1);
            }
        }
        return 0;
    default:
        return 0;
    }
}

void tj_normalize(lua_State *L, int idx, int markers)
{
    idx = lua_absindex(L, idx);
    if (LUA_VERSION_NUM < 503 && !markers)
        return;
    lua_pushvalue(L, idx);
    if (normalize_value(L, markers, 0))
        lua_replace(L, idx);
    else
        lua_pop(L, 1);
}
