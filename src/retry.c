/* retry.c - parsing the server's wait hints, see retry.h. */
#include "retry.h"
#include "value.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WAIT 1e9 /* seconds; longer hints are capped to this */

/* Delay seconds: digits, optionally ".digits" (RFC 9110 has digits only;
 * ratelimit-reset is sometimes fractional). -1 if s is not that. */
static double parse_seconds(const char *s)
{
    while (*s == ' ')
        s++;
    const char *p = s;
    while (isdigit((unsigned char)*p))
        p++;
    if (p == s)
        return -1;
    if (*p == '.') {
        const char *frac = ++p;
        while (isdigit((unsigned char)*p))
            p++;
        if (p == frac)
            return -1;
    }
    const char *end = p;
    while (*end == ' ')
        end++;
    if (*end)
        return -1;
    double v = tv_strtod(s); /* '.' whatever LC_NUMERIC says */
    /* Longer than any usable wait: still a wait, longer than max_retry_wait,
     * so the caller gives up rather than retry after a default. */
    return v > MAX_WAIT ? MAX_WAIT : v;
}

static int month_index(const char *m)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int i = 0; i < 12; i++)
        if (strncmp(m, names + (size_t)3 * (size_t)i, 3) == 0)
            return i;
    return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (civil_from_days inverse). */
static long days_from_civil(long y, int m, int d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The two digits at s as a number, or -1. */
static int two_digits(const char *s)
{
    if (!isdigit((unsigned char)s[0]) || !isdigit((unsigned char)s[1]))
        return -1;
    return (s[0] - '0') * 10 + (s[1] - '0');
}

/* "Sun, 06 Nov 1994 08:49:37 GMT" (IMF-fixdate, the only form HTTP
 * senders may use) -> Unix time, or -1. The day name is redundant and
 * not checked. */
static double parse_http_date(const char *s)
{
    static const char layout[] = "..., .. ... .... ..:..:.. GMT";
    if (strlen(s) != sizeof layout - 1)
        return -1;
    for (size_t i = 0; layout[i]; i++)
        if (layout[i] != '.' && layout[i] != s[i])
            return -1;
    char mon[4] = {s[8], s[9], s[10], 0};
    int m = month_index(mon);
    int day = two_digits(s + 5), century = two_digits(s + 12), yy = two_digits(s + 14);
    int hh = two_digits(s + 17), mm = two_digits(s + 20), ss = two_digits(s + 23);
    if (m < 0 || day < 1 || century < 0 || yy < 0 || hh < 0 || mm < 0 || ss < 0)
        return -1;
    int year = century * 100 + yy;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (year < 1970 || day > mdays[m] || (m == 1 && day == 29 && !leap) || hh > 23 || mm > 59 ||
        ss > 59)
        return -1;
    return (double)days_from_civil(year, m + 1, day) * 86400.0 + hh * 3600 + mm * 60 + ss;
}

double tr_retry_after(const char *retry_after, const char *ratelimit_reset, time_t now)
{
    if (retry_after) {
        double v = parse_seconds(retry_after);
        if (v >= 0)
            return v;
        double at = parse_http_date(retry_after);
        double wait = at > (double)now ? at - (double)now : 0;
        if (at >= 0)
            return wait <= MAX_WAIT ? wait : MAX_WAIT;
    }
    if (ratelimit_reset) {
        double v = parse_seconds(ratelimit_reset);
        if (v >= 0)
            return v;
    }
    return -1;
}
