/* curl_drive.c - driving the transfers of a client's multi handle:
 * running them, polling, ending what cannot be driven (a broken multi
 * handle, a request started before a fork, a read-ahead whose waiting time
 * is up), and pauses that keep reading the transfers in flight and end on
 * SIGINT.
 */
#include "curl_internal.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- driving transfers -------------------------------------------------- */

/* Moves finished transfers to SLOT_DONE. */
static void collect_finished(tcurl *t)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(t->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        slot *s = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        if (s) {
            s->result = msg->data.result;
            s->state = SLOT_DONE;
        }
    }
}

/* Ends s at once when it is still running: libcurl cannot drive it on. */
void tcurl_fail_slot(slot *s, const char *what, const char *why)
{
    if (s->state != SLOT_RUNNING)
        return;
    snprintf(s->errbuf, sizeof s->errbuf, "%s: %s", what, why);
    s->result = CURLE_RECV_ERROR; /* it may have been sent: s->sends says */
    s->state = SLOT_DONE;
}

static void fail_running(tcurl *t, const char *what, const char *why)
{
    for (slot *s = t->running; s; s = s->next)
        tcurl_fail_slot(s, what, why);
}

/* Runs transfers without blocking; 0 when the multi handle cannot (every
 * running request has then failed with the reason). A forked child never
 * drives what its parent started: those transfers run on the parent's
 * connections. */
int tcurl_pump(tcurl *t)
{
    if (!tcurl_ensure_multi(t)) {
        fail_running(t, "curl_multi_init", "failed");
        return 0;
    }
    int running;
    CURLMcode rc = curl_multi_perform(t->multi, &running);
    if (rc != CURLM_OK) {
        fail_running(t, "curl_multi_perform", curl_multi_strerror(rc));
        return 0;
    }
    collect_finished(t);
    return 1;
}

/* Blocks until a transfer of t has news or ms milliseconds passed; 0 when
 * polling failed (every running request has then failed with the reason). */
int tcurl_poll_multi(tcurl *t, int ms)
{
    CURLMcode rc = curl_multi_poll(t->multi, NULL, 0, ms, NULL);
    if (rc != CURLM_OK) {
        fail_running(t, "curl_multi_poll", curl_multi_strerror(rc));
        return 0;
    }
    return 1;
}

/* A request started by another process (before a fork) cannot be driven
 * here: it ends at once, as a transport failure that never sent anything
 * from this process. */
int tcurl_orphaned(slot *s)
{
    if (s->state != SLOT_RUNNING || s->pid == getpid())
        return 0;
    snprintf(s->errbuf, sizeof s->errbuf,
             "the request was started by another process (before fork) and cannot be read here");
    s->result = CURLE_FAILED_INIT;
    s->state = SLOT_DONE;
    s->sends = 0;
    return 1;
}

double tcurl_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts `elapsed` seconds of waiting against a read-ahead's timeout; one
 * whose time is up ends as a timeout. */
void tcurl_charge_wait(slot *s, double elapsed)
{
    if (s->state != SLOT_RUNNING || s->wait_timeout <= 0)
        return;
    s->waited += elapsed;
    if (s->waited < s->wait_timeout)
        return;
    if (s->added && s->owner)
        curl_multi_remove_handle(s->owner->multi, s->easy);
    s->added = 0;
    snprintf(s->errbuf, sizeof s->errbuf, "timed out after %.1f s waiting for the answer",
             s->waited);
    s->result = CURLE_OPERATION_TIMEDOUT;
    s->state = SLOT_DONE;
}

/* How long one poll may block for s: at most 1 s, and no longer than what
 * is left of a read-ahead's timeout. */
int tcurl_poll_ms(const slot *s, int ms)
{
    if (s->state == SLOT_RUNNING && s->wait_timeout > 0) {
        double left = (s->wait_timeout - s->waited) * 1000 + 1;
        if (left < ms)
            ms = left < 1 ? 1 : (int)left;
    }
    return ms;
}

/* Runs transfers until s is done (blocking). */
void tcurl_wait_slot(tcurl *t, slot *s)
{
    if (tcurl_orphaned(s))
        return;
    int ok = tcurl_pump(t);
    while (ok && s->state == SLOT_RUNNING) {
        double t0 = tcurl_monotonic();
        ok = tcurl_poll_multi(t, tcurl_poll_ms(s, 1000)) && tcurl_pump(t);
        tcurl_charge_wait(s, tcurl_monotonic() - t0);
    }
    tcurl_fail_slot(s, "curl", "the transfer could not be driven"); /* if not done yet */
}

/* ---- pauses ------------------------------------------------------------- */

/* A pause (transport:pause) is the driver's wait between attempts and during
 * rate holds: it keeps reading the transfers in flight and ends at once on
 * SIGINT. While it runs, SIGINT goes to on_interrupt, which notes it, wakes
 * curl_multi_poll (curl_multi_wakeup writes to libcurl's own socketpair, a
 * self-pipe) and hands the signal on to the handler it stood in for (the
 * Lua interpreter's, which stops Lua code at its next instruction). One
 * pause at a time per process catches the signal; a second one (another
 * thread) only polls. */
static volatile sig_atomic_t interrupted;
static CURLM *volatile pausing; /* the multi handle of the pause catching SIGINT */
static struct sigaction before_pause;

static void on_interrupt(int sig, siginfo_t *info, void *context)
{
    interrupted = 1;
    CURLM *m = pausing;
    if (m)
        curl_multi_wakeup(m);
    if (before_pause.sa_flags & SA_SIGINFO)
        before_pause.sa_sigaction(sig, info, context);
    else if (before_pause.sa_handler != SIG_DFL && before_pause.sa_handler != SIG_IGN)
        before_pause.sa_handler(sig);
}

/* Catches SIGINT for a pause on m; 0 when it does not (SIGINT ignored, or
 * another pause has it). */
static int catch_interrupt(CURLM *m)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    int caught = 0;
    pthread_mutex_lock(&lock);
    struct sigaction now;
    if (!pausing && sigaction(SIGINT, NULL, &now) == 0 && now.sa_handler != SIG_IGN) {
        struct sigaction mine;
        memset(&mine, 0, sizeof mine);
        mine.sa_sigaction = on_interrupt;
        mine.sa_flags = SA_SIGINFO;
        sigemptyset(&mine.sa_mask);
        before_pause = now;
        interrupted = 0;
        pausing = m;
        caught = sigaction(SIGINT, &mine, NULL) == 0;
        if (!caught)
            pausing = NULL;
    }
    pthread_mutex_unlock(&lock);
    return caught;
}

/* Gives SIGINT back to its handler, unless that handler (run from
 * on_interrupt) has set another one itself. A SIGINT whose handler was the
 * default action is raised again now, to take that action. */
static void release_interrupt(void)
{
    struct sigaction now;
    if (sigaction(SIGINT, NULL, &now) == 0 && (now.sa_flags & SA_SIGINFO) &&
        now.sa_sigaction == on_interrupt)
        sigaction(SIGINT, &before_pause, NULL);
    pausing = NULL;
    if (interrupted && !(before_pause.sa_flags & SA_SIGINFO) && before_pause.sa_handler == SIG_DFL)
        raise(SIGINT);
}

/* Sleeps what is left of a pause whose multi handle cannot be polled;
 * 0 when a signal ended it. */
static int sleep_until(double until)
{
    double left = until - tcurl_monotonic();
    if (left <= 0)
        return 1;
    struct timespec ts;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    return nanosleep(&ts, NULL) == 0;
}

/* Waits `seconds` (> 0) for transport:pause, reading the answers of the
 * transfers in flight as they come (they are then ready for their own
 * wait; a read-ahead's timeout does not run, as nobody waits for it);
 * 1 when SIGINT ended it early. */
int tcurl_pause(tcurl *t, double seconds)
{
    double until = tcurl_monotonic() + seconds;
    int polled = tcurl_ensure_multi(t);
    int caught = polled && catch_interrupt(t->multi);
    int signalled = 0;
    while (polled) {
        tcurl_pump(t);
        double now = tcurl_monotonic();
        if ((caught && interrupted) || now >= until)
            break;
        double left_ms = (until - now) * 1000 + 1;
        polled = tcurl_poll_multi(t, left_ms > 1000 ? 1000 : (int)left_ms);
    }
    if (caught) {
        signalled = interrupted;
        release_interrupt();
    }
    if (!signalled && !polled && !sleep_until(until))
        signalled = 1;
    return signalled;
}
