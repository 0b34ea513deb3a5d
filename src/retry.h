/*
 * retry.h - how long the server asked us to wait.
 */
#ifndef TRUTO_RETRY_H
#define TRUTO_RETRY_H

#include <stddef.h>
#include <time.h>

/*
 * Seconds to wait before retrying, from a Retry-After value (delta seconds
 * or an IMF-fixdate HTTP date) else a ratelimit-reset value (seconds).
 * Either may be NULL. Returns -1 when neither gives a usable wait.
 * now is the current time, for dates.
 */
double tr_retry_after(const char *retry_after, const char *ratelimit_reset, time_t now);

#endif
