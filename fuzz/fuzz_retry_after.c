/*
 * fuzz_retry_after.c - tr_retry_after(retry_after, ratelimit_reset, now).
 *
 * Input: 4 bytes of `now` (little-endian, so 1970..2106), 1 flags byte
 * (1: retry_after is NULL, 2: ratelimit_reset is NULL), then the two
 * values as NUL-terminated strings.
 *
 * Invariants:
 *   - the result is -1, or finite and in [0, 1e9] (the cap delta seconds
 *     already have);
 *   - it is the same when asked twice;
 *   - a Retry-After of plain delta seconds ("120", " 1.5 ") gives exactly
 *     that; an exact IMF-fixdate gives its distance from now, or 0;
 *   - a value that is neither (and has no "GMT", so no date was meant) is
 *     ignored: the result then comes from ratelimit-reset alone.
 */
#include "fuzz.h"

#include "../src/retry.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WAIT 1e9

/* Strict delta seconds: spaces, digits, optional .digits, spaces; -1 if not. */
static double strict_seconds(const char *s)
{
    const char *p = s + strspn(s, " ");
    size_t whole = strspn(p, "0123456789");
    if (!whole)
        return -1;
    const char *q = p + whole;
    if (*q == '.') {
        size_t frac = strspn(q + 1, "0123456789");
        if (!frac)
            return -1;
        q += 1 + frac;
    }
    q += strspn(q, " ");
    if (*q)
        return -1;
    double v = strtod(p, NULL);
    return v <= MAX_WAIT ? v : MAX_WAIT; /* longer hints are capped */
}

static int two_digits(const char *s, int *v)
{
    if (s[0] < '0' || s[0] > '9' || s[1] < '0' || s[1] > '9')
        return 0;
    *v = (s[0] - '0') * 10 + (s[1] - '0');
    return 1;
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" exactly, a real calendar date; Unix time or -1. */
static double strict_fixdate(const char *s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int day, hh, mm, ss, c1, c2;
    if (strlen(s) != 29 || s[3] != ',' || s[4] != ' ' || s[7] != ' ' || s[11] != ' ' ||
        s[16] != ' ' || s[19] != ':' || s[22] != ':' || strcmp(s + 25, " GMT") != 0)
        return -1;
    const char *m = strstr(months, (char[4]){s[8], s[9], s[10], 0});
    if (!m || (m - months) % 3 || !two_digits(s + 5, &day) || !two_digits(s + 12, &c1) ||
        !two_digits(s + 14, &c2) || !two_digits(s + 17, &hh) || !two_digits(s + 20, &mm) ||
        !two_digits(s + 23, &ss))
        return -1;
    int mon = (int)(m - months) / 3, year = c1 * 100 + c2;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || day < 1 || day > mdays[mon] || (mon == 1 && day == 29 && !leap) || hh > 23 ||
        mm > 59 || ss > 59)
        return -1;
    /* days from civil, written out plainly (years from 1970, no eras) */
    long days = 0;
    for (int y = 1970; y < year; y++)
        days += 365 + ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0);
    for (int i = 0; i < mon; i++)
        days += mdays[i] - (i == 1 && !leap);
    days += day - 1;
    return (double)days * 86400 + hh * 3600 + mm * 60 + ss;
}

static void check_range(double got)
{
    FZ_CHECK(got == -1 || (isfinite(got) && got >= 0), "result %.17g is not -1 or >= 0", got);
    FZ_CHECK(got <= MAX_WAIT, "result %.17g is past the 1e9 s cap", got);
}

/* The result from the model, or NAN when the model cannot tell. */
static double expected(const char *ra, const char *reset, time_t now)
{
    if (ra) {
        double v = strict_seconds(ra);
        if (v >= 0)
            return v;
        double at = strict_fixdate(ra);
        double wait = at > (double)now ? at - (double)now : 0;
        if (at >= 0)
            return wait <= MAX_WAIT ? wait : MAX_WAIT;
        if (at < 0 && strstr(ra, "GMT"))
            return NAN; /* some other date form: not modelled */
    }
    double v = reset ? strict_seconds(reset) : -1;
    if (v < 0 && reset && strspn(reset, " 0123456789.") != strlen(reset))
        return NAN;
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_reader r = {data, size};
    uint32_t now32 = 0;
    for (int i = 0; i < 4; i++)
        now32 |= (uint32_t)fz_byte(&r) << (8 * i);
    time_t now = (time_t)now32;
    int flags = fz_byte(&r);
    size_t len;
    const char *s = fz_until_nul(&r, &len);
    char *ra = flags & 1 ? NULL : strndup(s, len);
    s = fz_until_nul(&r, &len);
    char *reset = flags & 2 ? NULL : strndup(s, len);

    double got = tr_retry_after(ra, reset, now);
    check_range(got);
    FZ_CHECK(tr_retry_after(ra, reset, now) == got, "not deterministic");
    double want = expected(ra, reset, now);
    /* strtod also reads "0x10", "1e3", "1." and "5e-1" (finding "retry-lenient-seconds"). */
    if (!isnan(want) && got != want && fz_ignored("retry-lenient-seconds"))
        want = NAN;
    FZ_CHECK(isnan(want) || got == want,
             "retry_after=%s reset=%s now=%lld: got %.17g, expected %.17g", ra ? ra : "NULL",
             reset ? reset : "NULL", (long long)now, got, want);
    free(ra);
    free(reset);
    return 0;
}
