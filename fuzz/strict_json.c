/* strict_json.c - a small RFC 8259 validator, see strict_json.h. */
#include "strict_json.h"

#include <string.h>

#define SJ_MAX_DEPTH 1000 /* cjson's default decode limit */

typedef struct {
    const char *p;
    const char *end;
} sj;

static int value(sj *j, int depth);

static void skip_ws(sj *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int eat(sj *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int digits(sj *j)
{
    const char *start = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
        j->p++;
    return j->p > start;
}

static int number(sj *j)
{
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p < j->end && *j->p == '0')
        j->p++;
    else if (!digits(j))
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!digits(j))
            return 0;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (!digits(j))
            return 0;
    }
    return 1;
}

static int hex4(sj *j)
{
    for (int i = 0; i < 4; i++, j->p++)
        if (j->p >= j->end || !strchr("0123456789abcdefABCDEF", *j->p) || !*j->p)
            return 0;
    return 1;
}

/* Strings: escapes checked, raw control bytes refused; UTF-8 not checked
 * (cjson passes bytes through). */
static int string(sj *j)
{
    j->p++; /* the opening quote */
    while (j->p < j->end) {
        unsigned char c = (unsigned char)*j->p++;
        if (c == '"')
            return 1;
        if (c < 0x20)
            return 0;
        if (c != '\\')
            continue;
        if (j->p >= j->end)
            return 0;
        c = (unsigned char)*j->p++;
        if (c == 'u') {
            if (!hex4(j))
                return 0;
        } else if (!strchr("\"\\/bfnrt", c) || !c) {
            return 0;
        }
    }
    return 0;
}

static int literal(sj *j, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
        return 0;
    j->p += n;
    return 1;
}

/* Items of an array or members of an object, up to the closing byte. */
static int items(sj *j, char close, int members, int depth)
{
    j->p++; /* the opening bracket */
    if (eat(j, close))
        return 1;
    do {
        if (members) {
            skip_ws(j);
            if (j->p >= j->end || *j->p != '"' || !string(j) || !eat(j, ':'))
                return 0;
        }
        if (!value(j, depth + 1))
            return 0;
    } while (eat(j, ','));
    return eat(j, close);
}

static int value(sj *j, int depth)
{
    skip_ws(j);
    if (j->p >= j->end || depth > SJ_MAX_DEPTH)
        return 0;
    switch (*j->p) {
    case '{':
        return items(j, '}', 1, depth);
    case '[':
        return items(j, ']', 0, depth);
    case '"':
        return string(j);
    case 't':
        return literal(j, "true");
    case 'f':
        return literal(j, "false");
    case 'n':
        return literal(j, "null");
    default:
        return number(j);
    }
}

int sj_valid(const char *s, size_t len)
{
    sj j = {s, s + len};
    if (!value(&j, 0))
        return 0;
    skip_ws(&j);
    return j.p == j.end;
}
