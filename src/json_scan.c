/* json_scan.c - the one pass over a JSON text that both decoding paths share, see json_scan.h. */
#include "json_scan.h"
#include "json_plan.h"
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* The first quote or backslash at or after i, or len. Sixteen bytes at a
 * time where SSE2 is there: the text is mostly strings. */
static inline size_t skip_plain(const unsigned char *s, size_t i, size_t len)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"');
    const __m128i backslash = _mm_set1_epi8('\\');
    while (i + 16 <= len) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i stop = _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash));
        unsigned mask = (unsigned)_mm_movemask_epi8(stop);
        if (mask)
            return i + (size_t)__builtin_ctz(mask);
        i += 16;
    }
#endif
    while (i < len && s[i] != '"' && s[i] != '\\')
        i++;
    return i;
}

/* Whether the text has a byte no \u escape can produce (TJ_IS_ODD_BYTE),
 * anywhere: looked for only once something was rewritten. */
static int has_odd_byte(const unsigned char *s, size_t len)
{
    size_t i = 0;
#if defined(__SSE2__)
    const __m128i c0 = _mm_set1_epi8((char)0xC0);
    const __m128i c1 = _mm_set1_epi8((char)0xC1);
    const __m128i f5 = _mm_set1_epi8((char)0xF5);
    for (; i + 16 <= len; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i odd = _mm_or_si128(_mm_cmpeq_epi8(x, c0), _mm_cmpeq_epi8(x, c1));
        odd = _mm_or_si128(odd, _mm_cmpeq_epi8(_mm_max_epu8(x, f5), x)); /* x >= 0xF5 */
        if (_mm_movemask_epi8(odd))
            return 1;
    }
#endif
    for (; i < len; i++)
        if (TJ_IS_ODD_BYTE(s[i]))
            return 1;
    return 0;
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
 * which no rewrite may turn into a valid string. Kept as what the next
 * token is (`expect`), updated by the structural bytes. */
typedef struct {
    char open[TJ_SCAN_DEPTH]; /* '[' or '{' for each enclosing container */
    size_t depth;
    int cur;    /* the innermost container's '[' or '{'; 0 at the top or too deep to follow */
    int expect; /* the next token is 'v' a value, 'k' an object key, or 0 neither */
} jscan;

static inline void open_container(jscan *j, char c)
{
    j->cur = j->depth < TJ_SCAN_DEPTH ? c : 0;
    if (j->cur)
        j->open[j->depth] = c;
    j->depth++;
    j->expect = j->cur == '[' ? 'v' : j->cur == '{' ? 'k' : 0;
}

static inline void close_container(jscan *j)
{
    if (j->depth > 0)
        j->depth--;
    j->cur = j->depth > 0 && j->depth <= TJ_SCAN_DEPTH ? j->open[j->depth - 1] : 0;
    j->expect = 0;
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

/* One scan: the text, where it is, and what it has written. */
typedef struct {
    const unsigned char *s;
    size_t len, i;
    size_t copied; /* bytes of the text copied to out */
    size_t edits, values;
    tj_scan *sc;
    tj_plan *plan;
    tbuf *out;
    jscan j;
    int numbers; /* number literals are looked at */
    int arrays;  /* empty arrays are rewritten */
} scanner;

/* Notes one more rewrite; the first reserves room for the whole text, so
 * the copy grows once, not by doubling. */
static void note_edit(scanner *z)
{
    if (z->edits++ == 0)
        (void)tbuf_reserve(z->out, z->len + z->len / 8 + 64);
}

/* Skips the string whose opening quote is at i: returns the index of its
 * closing quote (or len). */
static inline size_t skip_string(const unsigned char *s, size_t i, size_t len)
{
    i++;
    while (i < len) {
        i = skip_plain(s, i, len);
        if (i >= len || s[i] == '"')
            break;
        i += 2; /* a backslash and the byte it escapes */
    }
    return i < len ? i : len;
}

/* Counts a value; 0 when there are more than max_values (the scan stops). */
static inline int count_value(scanner *z)
{
    if (z->sc->max_values && ++z->values > z->sc->max_values) {
        z->sc->too_many = 1;
        return 0;
    }
    return 1;
}

/* The number token at z->i, at a value position or not. */
static int scan_number(scanner *z, int value)
{
    const unsigned char *s = z->s;
    size_t start = z->i, i;
    int plain = 1; /* digits only so far */
    for (i = start + 1; i < z->len && is_number_char(s[i]); i++)
        plain = plain && is_digit(s[i]);
    z->i = i;
    if (!count_value(z))
        return 0;
    /* up to 15 digits and nothing else: exact in a double, nothing to rewrite */
    int look = z->numbers && !(plain && i - start < 16) && value;
    char kind = (char)(look ? number_rewrite(z->sc, s + start, i - start) : 0);
    if (kind) {
        note_edit(z);
        copy_upto(z->out, s, &z->copied, start);
        if (kind == 's')
            tbuf_addc(z->out, '"');
        else
            add_marker(z->out, z->sc, kind);
        copy_upto(z->out, s, &z->copied, i);
        tbuf_addc(z->out, '"');
    }
    if (z->plan && value && (z->plan->numbers || kind == 'i' || kind == 'f'))
        tj_plan_scalar(z->plan);
    return 1;
}

/* After a '[': an empty array becomes [marker "a"]. */
static void mark_empty_array(scanner *z)
{
    const unsigned char *s = z->s;
    size_t k = z->i;
    while (k < z->len && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r' || s[k] == '\n'))
        k++;
    if (k < z->len && s[k] == ']') {
        note_edit(z);
        copy_upto(z->out, s, &z->copied, z->i);
        add_marker(z->out, z->sc, 'a');
        tbuf_addc(z->out, '"');
        z->copied = k;
    }
}

/* true, false, null, or junk cjson will refuse: one token. */
static int scan_literal(scanner *z)
{
    if (!count_value(z))
        return 0;
    for (z->i++; z->i < z->len && z->s[z->i] >= 'a' && z->s[z->i] <= 'z'; z->i++)
        ;
    return 1;
}

/* From the key at i (its quote) in an object, while the text is compact
 * `"key":"string",`: the members whose values are strings, the most of
 * every object, without going through the token loop (values are not
 * counted: only when max_values is not asked for). Returns where the token
 * loop goes on, with j->expect set for it. */
static inline size_t scan_members(scanner *z, size_t i)
{
    const unsigned char *s = z->s;
    const size_t len = z->len;
    for (;;) {
        if (z->plan)
            tj_plan_key(z->plan, i + 1);
        i = skip_string(s, i, len) + 1;
        if (i >= len || s[i] != ':') {
            z->j.expect = 0;
            return i;
        }
        if (++i >= len || s[i] != '"') {
            z->j.expect = 'v';
            return i;
        }
        i = skip_string(s, i, len) + 1;
        if (i >= len || s[i] != ',') {
            z->j.expect = 0;
            return i;
        }
        if (++i >= len || s[i] != '"') {
            z->j.expect = 'k';
            return i;
        }
    }
}

/* A string token at i: a value (counted when `counting`), the first key of
 * a compact run of string members, or a key (for the plan). Returns 0 when
 * the scan must stop. */
static inline int scan_string(scanner *z, int counting)
{
    jscan *j = &z->j;
    if (j->expect == 'v') {
        if (counting && !count_value(z))
            return 0;
    } else if (j->expect == 'k' && !counting) {
        z->i = scan_members(z, z->i);
        return 1;
    } else if (z->plan && j->depth > 0) {
        tj_plan_key(z->plan, z->i + 1);
    }
    z->i = skip_string(z->s, z->i, z->len) + 1;
    j->expect = 0;
    return 1;
}

/* The loop over the tokens. Strings and the structural bytes are most of
 * every text and are handled here; numbers, literals and the rewrites in
 * the functions above. */
static void scan_tokens(scanner *z)
{
    const unsigned char *s = z->s;
    const size_t len = z->len;
    tj_plan *plan = z->plan;
    tj_scan *sc = z->sc;
    jscan *j = &z->j;
    int counting = sc->max_values != 0;
    while (z->i < len) {
        unsigned char c = s[z->i];
        switch (c) {
        case '"':
            if (!scan_string(z, counting))
                return;
            break;
        case ',':
            if (plan)
                tj_plan_comma(plan);
            j->expect = j->cur == '[' ? 'v' : j->cur == '{' ? 'k' : 0;
            z->i++;
            break;
        case ':':
            j->expect = j->cur == '{' ? 'v' : 0;
            z->i++;
            break;
        case '[':
        case '{':
            if (!count_value(z))
                return;
            if (plan)
                tj_plan_open(plan, (char)c);
            open_container(j, (char)c);
            z->i++;
            if (c == '[' && z->arrays)
                mark_empty_array(z);
            break;
        case ']':
        case '}':
            if (plan)
                tj_plan_close(plan);
            close_container(j);
            z->i++;
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            z->i++;
            break;
        case '-':
        case '0':
        case '1':
        case '2':
        case '3':
        case '4':
        case '5':
        case '6':
        case '7':
        case '8':
        case '9': {
            int value = j->expect == 'v';
            j->expect = 0;
            if (!scan_number(z, value))
                return;
            break;
        }
        default:
            j->expect = 0;
            if (!scan_literal(z))
                return;
            break;
        }
    }
}

size_t tj_scan_text(const char *text, size_t len, tj_scan *sc, tbuf *out)
{
    scanner z;
    z.s = (const unsigned char *)text;
    z.len = len;
    z.i = z.copied = z.edits = z.values = 0;
    z.sc = sc;
    z.plan = sc->plan;
    z.out = out;
    z.j.depth = 0;
    z.j.cur = 0;
    z.j.expect = 'v';
    z.numbers = sc->big_strings || sc->mark_numbers;
    z.arrays = sc->mark_arrays && sc->marker_len > 0;
    sc->too_many = 0;
    sc->odd_bytes = 0;
    scan_tokens(&z);
    sc->values = z.values;
    if (z.edits && !sc->too_many) {
        copy_upto(out, z.s, &z.copied, len);
        sc->odd_bytes = has_odd_byte(z.s, len);
    }
    return sc->too_many ? 0 : z.edits;
}

void tj_too_many(lua_State *L, size_t max)
{
    char msg[80];
    snprintf(msg, sizeof msg, "JSON text has more than %zu values (max_values)", max);
    lua_pushstring(L, msg);
}
