/*
 * curl_internal.h - what the files of the libcurl transport share: the
 * client (tcurl) and request (slot) structs, and the functions one file
 * calls in another. Not part of the module's interface (transport_curl.h).
 *
 * curl_request.c  libcurl's callbacks, building a request, starting and releasing it
 * curl_client.c   the client: settings, easy handles, fork, the state's share
 * curl_drive.c    driving transfers, read-ahead timeouts, pauses
 * curl_answer.c   an answer or a failure as the Lua table the contract names
 * transport_curl.c  the Lua bindings: transport and request methods
 */
#ifndef TRUTO_CURL_INTERNAL_H
#define TRUTO_CURL_INTERNAL_H

#include "buf.h"
#include "transport_curl.h"

#include <curl/curl.h>
#include <sys/types.h>

#define IDLE_POOL 16 /* easy handles kept for reuse */

typedef struct tcurl tcurl;

typedef enum { SLOT_IDLE, SLOT_RUNNING, SLOT_DONE } slot_state;

/* One request: its easy handle, what it sent and what came back. */
typedef struct slot {
    tcurl *owner; /* NULL once the client is gone */
    CURL *easy;
    struct curl_slist *headers_out;
    slot_state state;
    CURLcode result;
    int body_too_large;
    int sends;           /* requests put on the wire (CURLOPT_PREREQFUNCTION) */
    int headers_ended;   /* the final header block is over: later lines are trailers */
    size_t block_bytes;  /* of the header block or trailers being read */
    curl_off_t length;   /* the Content-Length named so far, -1 if none */
    const char *refused; /* why on_header stopped a malformed answer, or NULL */
    int added;           /* in the multi handle */
    pid_t pid;           /* the process that started it */
    curl_off_t max_body; /* bytes of answer body accepted */
    double wait_timeout; /* > 0: the timeout counts only time spent waiting for it (read-ahead) */
    double waited;       /* seconds spent waiting for it so far */
    tbuf body;
    tbuf headers; /* raw header lines of the answer */
    char errbuf[CURL_ERROR_SIZE];
    struct slot *prev, *next; /* the owner's list of running slots */
} slot;

struct tcurl {
    CURLM *multi;
    pid_t pid;         /* process that created multi (see tcurl_ensure_multi) */
    char *auth_header; /* "Authorization: Bearer ..."; never shown anywhere */
    char *ca_file;
    char *proxy; /* NULL: libcurl reads the environment; "": no proxy */
    int verify_tls;
    long low_speed_limit; /* bytes per second ... */
    long low_speed_time;  /* ... for this many seconds, else abort */
    /* for a request that names none: the client's, from truto.defaults */
    double timeout, connect_timeout, max_body;
    CURLM *inherited; /* a parent's handles, kept but never used (fork) */
    CURL *inherited_idle[IDLE_POOL];
    CURL *idle[IDLE_POOL];
    int n_idle;
    slot *running; /* slots added to multi */
    CURLSH *share; /* the state's share (kept alive as our user value) */
    pid_t share_pid;
};

/* curl_request.c */
void tcurl_set_client_options(tcurl *t, CURL *e);
void tcurl_start_slot(lua_State *L, tcurl *t, slot *s);
void tcurl_release_slot(slot *s);

/* curl_client.c */
double tcurl_number_field(lua_State *L, int idx, const char *name, double dflt, double lo,
                          double hi);
int tcurl_ensure_multi(tcurl *t);
CURL *tcurl_take_easy(tcurl *t);
void tcurl_give_back_easy(tcurl *t, CURL *e);
void tcurl_free(tcurl *t);
void tcurl_init_state(lua_State *L);

/* curl_drive.c */
void tcurl_fail_slot(slot *s, const char *what, const char *why);
int tcurl_pump(tcurl *t);
int tcurl_poll_multi(tcurl *t, int ms);
int tcurl_orphaned(slot *s);
double tcurl_monotonic(void);
void tcurl_charge_wait(slot *s, double elapsed);
int tcurl_poll_ms(const slot *s, int ms);
void tcurl_wait_slot(tcurl *t, slot *s);
int tcurl_pause(tcurl *t, double seconds);

/* curl_answer.c */
int tcurl_push_answer(lua_State *L, slot *s);
void tcurl_free_slot_buffers(slot *s);

#endif
