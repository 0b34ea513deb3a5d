/* json.c - the JSON encoder, lua-cjson as the decoder, and the text scan, see json.h. */
#include "json.h"
#include "json_compat.h"
#include "value.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ---- encoding ---------------------------------------------------------- */

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

/* ---- the text scan ----------------------------------------------------- */

/* Bytes that end the fast loop inside a string: the quote, the backslash,
 * and every byte from 0xC0 up (the odd bytes are among them). */
static unsigned char string_stop[256];

static void init_tables(void)
{
    for (int c = 0; c < 256; c++)
        string_stop[c] = (unsigned char)(c == '"' || c == '\\' || c >= 0xC0);
}

/* The first byte at or after i that ends the plain run inside a string
 * (string_stop), or len. Sixteen bytes at a time where SSE2 is there: the
 * text is mostly strings, and this loop is most of the scan. */
static size_t skip_plain(const unsigned char *s, size_t i, size_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    const __m128i high = _mm_set1_epi8((char)0xC0);
    while (i + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash));
        stop = _mm_or_si128(stop, _mm_cmpeq_epi8(_mm_max_epu8(x, high), x)); /* x >= 0xC0 */
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < len && !string_stop[s[i]])
        i++;
    return i;
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Bytes a number token runs over (more than JSON allows, as cjson does). */
static int is_number_char(unsigned char c)
{
    return is_digit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' || c == 'x' ||
           c == 'X';
}

/* Where a token stands: enough of the grammar to know that it is a value
 * (top level, array element, or after a key's ':'), never an object key,
 * which no rewrite may turn into a valid string. */
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

enum { NUM_OTHER, NUM_INTEGER, NUM_FLOAT };

/* What the number token [s, s+n) is under RFC 8259: an integer literal,
 * one with a fraction or exponent, or something only cjson might take. */
static int classify_number(const unsigned char *s, size_t n)
{
    size_t i = s[0] == '-';
    int kind = NUM_INTEGER;
    if (i >= n)
        return NUM_OTHER;
    if (s[i] == '0')
        i++;
    else if (s[i] >= '1' && s[i] <= '9')
        while (i < n && is_digit(s[i]))
            i++;
    else
        return NUM_OTHER;
    if (i < n && s[i] == '.') {
        size_t d = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == d)
            return NUM_OTHER;
        kind = NUM_FLOAT;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        size_t d = i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == d)
            return NUM_OTHER;
        kind = NUM_FLOAT;
    }
    return i == n ? kind : NUM_OTHER;
}

/* Compares the digits [s, s+n) (no sign, no leading zero) with the
 * decimal number lim: <0, 0 or >0. */
static int compare_digits(const unsigned char *s, size_t n, const char *lim)
{
    size_t m = strlen(lim);
    if (n != m)
        return n < m ? -1 : 1;
    return memcmp(s, lim, n);
}

/* For an integer literal: whether |n| > 2^53 (a double cannot carry
 * every such integer) and whether n fits in int64. */
static void integer_range(const unsigned char *s, size_t n, int *past53, int *fits64)
{
    int neg = s[0] == '-';
    s += neg, n -= (size_t)neg;
    *past53 = compare_digits(s, n, "9007199254740992") > 0;
    *fits64 = compare_digits(s, n, neg ? "9223372036854775808" : "9223372036854775807") <= 0;
}

/* For a literal with fraction or exponent: whether its double is integral
 * and in int64 range (the values the compatibility path would otherwise
 * turn into integers, where current lua-cjson keeps a float). */
static int integral_float(const unsigned char *s, size_t n)
{
    char small[64];
    char *tmp = n < sizeof small ? small : malloc(n + 1);
    if (!tmp)
        return 1; /* a marker is always right, only slower */
    memcpy(tmp, s, n);
    tmp[n] = 0;
    double d = tv_strtod(tmp);
    if (tmp != small)
        free(tmp);
    return d == floor(d) && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
}

/* Copies the text up to s+upto to out (the part not copied yet). */
static void copy_upto(tbuf *out, const unsigned char *s, size_t *copied, size_t upto)
{
    tbuf_add(out, s + *copied, upto - *copied);
    *copied = upto;
}

static void add_marker(tbuf *out, const tj_scan *sc, char kind)
{
    tbuf_addc(out, '"');
    tbuf_add(out, sc->marker, sc->marker_len);
    tbuf_addc(out, kind);
}

/* What to do with the number token [start, start+n) at a value position:
 * returns the marker kind ('i', 'f'), 's' for a plain string, or 0. */
static char number_rewrite(const tj_scan *sc, const unsigned char *s, size_t n)
{
    int kind = classify_number(s, n);
    if (kind == NUM_INTEGER) {
        int past53, fits64;
        integer_range(s, n, &past53, &fits64);
        if (past53 && sc->big_strings)
            return 's';
        if (past53 && fits64 && sc->mark_numbers)
            return 'i';
    } else if (kind == NUM_FLOAT && sc->mark_numbers && integral_float(s, n)) {
        return 'f';
    }
    return 0;
}

size_t tj_scan_text(const char *text, size_t len, tj_scan *sc, tbuf *out)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t edits = 0, copied = 0, i = 0, values = 0;
    size_t max = sc->max_values;
    int numbers = sc->big_strings || sc->mark_numbers;
    int arrays = sc->mark_arrays && sc->marker_len > 0;
    jscan j;
    j.depth = 0;
    j.prev = 0;
    sc->too_many = 0;
    sc->odd_bytes = 0;
#define COUNT_VALUE()                                                                              \
    do {                                                                                           \
        if (max && ++values > max) {                                                               \
            sc->too_many = 1;                                                                      \
            goto done;                                                                             \
        }                                                                                          \
    } while (0)
    while (i < len) {
        unsigned char c = s[i];
        if (c == '"') {
            if (max && at_value_position(&j) && ++values > max) {
                sc->too_many = 1;
                goto done;
            }
            for (i++; i < len; i++) {
                i = skip_plain(s, i, len);
                if (i >= len || s[i] == '"')
                    break;
                if (s[i] == '\\')
                    i++;
                else if (TJ_IS_ODD_BYTE(s[i]))
                    sc->odd_bytes = 1;
            }
            i++;
            j.prev = '"';
        } else if (c == '-' || is_digit(c)) {
            size_t start = i;
            int plain = 1; /* digits only so far */
            for (i++; i < len && is_number_char(s[i]); i++)
                plain = plain && is_digit(s[i]);
            COUNT_VALUE();
            /* up to 15 digits and nothing else: exact in a double, nothing to do */
            int look = numbers && !(plain && i - start < 16) && at_value_position(&j);
            char kind = (char)(look ? number_rewrite(sc, s + start, i - start) : 0);
            if (kind) {
                edits++;
                copy_upto(out, s, &copied, start);
                if (kind == 's')
                    tbuf_addc(out, '"');
                else
                    add_marker(out, sc, kind);
                copy_upto(out, s, &copied, i);
                tbuf_addc(out, '"');
            }
            j.prev = '0';
        } else if (c == '[' || c == '{' || c == ']' || c == '}' || c == ',' || c == ':') {
            if (c == '[' || c == '{')
                COUNT_VALUE();
            note_structure(&j, (char)c);
            i++;
            if (c == '[' && arrays) {
                size_t k = i;
                while (k < len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\n'))
                    k++;
                if (k < len && s[k] == ']') {
                    edits++;
                    copy_upto(out, s, &copied, i);
                    add_marker(out, sc, 'a');
                    tbuf_addc(out, '"');
                    copied = k;
                }
            }
        } else {
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
                /* true, false, null, or junk cjson will refuse: one token */
                COUNT_VALUE();
                j.prev = (char)c;
                for (i++; i < len && s[i] >= 'a' && s[i] <= 'z'; i++)
                    ;
                continue;
            }
            i++;
        }
    }
done:
#undef COUNT_VALUE
    sc->values = values;
    if (edits && !sc->too_many)
        copy_upto(out, s, &copied, len);
    return sc->too_many ? 0 : edits;
}

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
        o->big_boxes = v[0] == 'i' && LUA_VERSION_NUM < 503;
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

/* ---- decoding ---------------------------------------------------------- */

#define TRUTO_JSON_CAPS "truto.json.caps"

int tj_run_decode(lua_State *L, const char *s, size_t len, int idx)
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
    return rc == LUA_OK ? 1 : rc == LUA_ERRMEM ? TJ_NOMEM : 0;
}

static tj_caps no_caps;

const tj_caps *tj_capabilities(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_JSON_CAPS);
    const tj_caps *caps = lua_touserdata(L, -1);
    lua_pop(L, 1); /* the registry keeps it alive */
    return caps ? caps : &no_caps;
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

void tj_too_many(lua_State *L, size_t max)
{
    char msg[80];
    snprintf(msg, sizeof msg, "JSON text has more than %zu values (max_values)", max);
    lua_pushstring(L, msg);
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
        return tj_run_decode(L, s, len, o->text_idx);
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
        ok = edits ? tj_run_decode(L, text.data, text.len, 0)
                   : tj_run_decode(L, s, len, o->text_idx);
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
#if LUA_VERSION_NUM >= 503
    static const lua_Integer want[] = {9007199254740993LL, -9223372036854775807LL - 1, 1};
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
#else
    (void)L, (void)inst;
    return 1; /* no integer type: every lua-cjson gives the same doubles */
#endif
}

void tj_init(lua_State *L)
{
    init_tables();
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
