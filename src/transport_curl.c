/* transport_curl.c - the libcurl transport, see transport_curl.h.
 *
 * One multi handle per client drives every transfer, so all of a client's
 * requests share one connection cache: sequential calls reuse one
 * keep-alive connection, and several requests can be in flight at once
 * (read-ahead, many accounts). A request is a "slot": an easy handle taken
 * from the client's idle pool plus the buffers its answer goes into.
 *
 * Our libcurl callbacks only copy bytes into C buffers; no Lua code runs
 * inside libcurl, so no Lua error can unwind through its frames.
 *
 * The contract is truto.transport's (src/truto/transport.lua): a request is
 * a table { method, url, headers, body, timeout, connect_timeout, max_body,
 * reuse }, sent exactly as named (path as is, no dot-segment removal); we
 * add only Authorization (and libcurl Host, Content-Length and
 * Accept-Encoding). An answer is { status, headers, body, sends }, a
 * failure { kind, message, sends, too_large, stale }. `sends` counts how
 * often the request went on the wire: libcurl itself sends a request again
 * when a reused connection turns out dead, and that must be seen.
 */
#include "transport_curl.h"
#include "buf.h"
#include "version.h"

#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IDLE_POOL 16 /* easy handles kept for reuse */
/* Bytes of one header block (status line and headers, or trailers): the
 * nginx transport's bound too, so both refuse the same answers. */
#define MAX_HEADER_BLOCK (256L * 1024)

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
    pid_t pid;         /* process that created multi (see ensure_multi) */
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

/* ---- callbacks ---------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n;
    if ((curl_off_t)(s->body.len + len) > s->max_body) {
        s->body_too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    tbuf_add(&s->body, data, len);
    return s->body.oom ? 0 : len;
}

/* Stops the transfer: a malformed answer is refused, not guessed at. */
static size_t refuse(slot *s, const char *why)
{
    s->refused = why;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
}

/* Whether a header line names `name` (lower case, with the colon). */
static int names(const char *line, const char *name)
{
    return strncasecmp(line, name, strlen(name)) == 0;
}

/* The Content-Length value of the line [p, p+len) ("Content-Length:"
 * skipped): digits between optional blanks, else -1. */
static curl_off_t content_length(const char *p, size_t len)
{
    size_t i = strlen("content-length:");
    while (i < len && (p[i] == ' ' || p[i] == '\t'))
        i++;
    curl_off_t v = 0;
    size_t digits = 0;
    for (; i < len && isdigit((unsigned char)p[i]); i++, digits++) {
        if (digits == 18) /* past any answer we would read */
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    while (i < len && isspace((unsigned char)p[i]))
        i++;
    return digits && i == len ? v : -1;
}

/* Framing a proxy or the other transport could read differently is
 * refused: two Content-Length values, a NUL in a header, a header block
 * or trailers past MAX_HEADER_BLOCK (the nginx transport's rules). */
static size_t check_framing(slot *s, const char *data, size_t len)
{
    s->block_bytes += len;
    if (s->block_bytes > (size_t)MAX_HEADER_BLOCK)
        return refuse(s, s->headers_ended ? "the answer's trailers are larger than 256 KiB"
                                          : "the answer's headers are larger than 256 KiB");
    if (memchr(data, 0, len))
        return refuse(s, "a NUL byte in the answer's headers");
    if (!s->headers_ended && names(data, "content-length:")) {
        curl_off_t v = content_length(data, len);
        if (v < 0)
            return refuse(s, "bad Content-Length");
        if (s->length >= 0 && v != s->length)
            return refuse(s, "conflicting Content-Length headers");
        s->length = v;
    }
    return len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    slot *s = ud;
    size_t len = size * n;
    /* A new status line starts a new header block (after 1xx answers). */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        tbuf_reset(&s->headers);
        s->headers_ended = 0;
        s->block_bytes = 0;
        s->length = -1;
    } else if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (!s->headers_ended) {
            s->headers_ended = 1;
            s->block_bytes = 0;
            tbuf_add(&s->headers, data, len);
        }
        return s->headers.oom ? 0 : len;
    }
    if (check_framing(s, data, len) != len)
        return 0;
    if (s->headers_ended)
        return len; /* a trailer: not a header (the nginx transport agrees) */
    tbuf_add(&s->headers, data, len);
    return s->headers.oom ? 0 : len;
}

/* Called each time libcurl is about to send the request on a connection. */
static int on_send(void *ud, char *conn_primary_ip, char *conn_local_ip, int conn_primary_port,
                   int conn_local_port)
{
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    (void)conn_local_port;
    ((slot *)ud)->sends++;
    return CURL_PREREQFUNC_OK;
}

/* ---- the client: options, handles, fork --------------------------------- */

/* A copy of the string field `name` of the table at idx into *out (NULL
 * when the field is not set). Returns 0 when the copy could not be made. */
static int dup_field(lua_State *L, int idx, const char *name, char **out)
{
    lua_getfield(L, idx, name);
    const char *s = lua_tostring(L, -1);
    *out = s ? strdup(s) : NULL;
    lua_pop(L, 1);
    return !s || *out;
}

/* A number field in [lo, hi], else dflt; NaN and infinities give dflt. */
static double number_field(lua_State *L, int idx, const char *name, double dflt, double lo,
                           double hi)
{
    lua_getfield(L, idx, name);
    double v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) /* also NaN */
        v = dflt;
    return v;
}

/* The number at settings[name], which must be in [lo, hi]; raises if not. */
static double required_field(lua_State *L, int idx, const char *name, double lo, double hi)
{
    lua_getfield(L, idx, name);
    double v = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : lo - 1;
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) /* also NaN */
        luaL_error(L, "settings.%s: a number from %f to %f expected", name, (lua_Number)lo,
                   (lua_Number)hi);
    return v;
}

/* Seconds -> milliseconds for libcurl's long options, in range. */
static long seconds_ms(double seconds)
{
    double ms = seconds * 1000.0;
    return ms < 1 ? 1 : ms > 2147483647.0 ? 2147483647L : (long)ms;
}

/* Options that are the same for every request of the client. */
static void set_client_options(tcurl *t, CURL *e)
{
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_send);
    /* the path exactly as given: "%2E%2E" is an id, and so is "." */
    curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->verify_tls ? 2L : 0L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    if (t->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, t->proxy);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, t->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t->low_speed_time);
}

/*
 * Handles inherited through fork() share their sockets with the parent;
 * closing them here could send a TLS close_notify on the parent's
 * connection. A child therefore abandons what it inherited (deliberately
 * not freed: freeing would close those sockets) and starts afresh.
 */
static int ensure_multi(tcurl *t)
{
    if (t->multi && t->pid == getpid())
        return 1;
    if (t->multi) { /* still pointed to, so leak checkers see them kept */
        t->inherited = t->multi;
        memcpy(t->inherited_idle, t->idle, sizeof t->idle);
    }
    t->multi = curl_multi_init();
    t->pid = getpid();
    t->n_idle = 0;
    t->running = NULL;
    if (!t->multi)
        return 0;
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, 32L);
    return 1;
}

/*
 * One share for every client of a Lua state (in practice: of the process,
 * or of an nginx worker): the connection cache, TLS sessions and DNS
 * answers. Code that makes a client per call (scripts, request handlers)
 * then reuses a kept-alive connection, or at least a TLS session, instead
 * of paying a handshake each time. libcurl reuses a connection only for a
 * request with the same TLS and proxy settings, so clients with other
 * settings never get each other's connections. The share is a userdata in
 * the registry, freed by its __gc after every client (each client holds it
 * as its user value); a forked child does not use its parent's share.
 */
#define TRUTO_SHARE_KEY "truto.share"

typedef struct {
    CURLSH *share;
    pid_t pid;
} tshare;

static pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];

static void share_lock(CURL *e, curl_lock_data data, curl_lock_access access, void *ud)
{
    (void)e;
    (void)access;
    (void)ud;
    pthread_mutex_lock(&share_locks[data]);
}

static void share_unlock(CURL *e, curl_lock_data data, void *ud)
{
    (void)e;
    (void)ud;
    pthread_mutex_unlock(&share_locks[data]);
}

static int share_gc(lua_State *L)
{
    tshare *ts = lua_touserdata(L, 1);
    if (ts->share && ts->pid == getpid() && curl_share_cleanup(ts->share) == CURLSHE_OK)
        ts->share = NULL;
    return 0;
}

/* Creates the state's share in the registry (NULL inside when libcurl
 * cannot make one: then each client keeps its own caches). */
static void create_share(lua_State *L)
{
    tshare *ts = lua_newuserdatauv(L, sizeof *ts, 0);
    ts->pid = getpid();
    ts->share = curl_share_init();
    lua_newtable(L);
    lua_pushcfunction(L, share_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    if (ts->share) {
        curl_share_setopt(ts->share, CURLSHOPT_LOCKFUNC, share_lock);
        curl_share_setopt(ts->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
        curl_share_setopt(ts->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
        curl_share_setopt(ts->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
        curl_share_setopt(ts->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, TRUTO_SHARE_KEY);
}

static CURL *take_easy(tcurl *t)
{
    if (t->n_idle > 0)
        return t->idle[--t->n_idle];
    CURL *e = curl_easy_init();
    if (e) {
        set_client_options(t, e);
        curl_easy_setopt(e, CURLOPT_SHARE, t->share_pid == getpid() ? t->share : NULL);
    }
    return e;
}

static void give_back_easy(tcurl *t, CURL *e)
{
    if (t && t->n_idle < IDLE_POOL && t->pid == getpid())
        t->idle[t->n_idle++] = e;
    else
        curl_easy_cleanup(e);
}

int tcurl_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    tcurl *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    luaL_setmetatable(L, TRUTO_CURL_MT); /* from here on __gc frees what we add */
    lua_getfield(L, LUA_REGISTRYINDEX, TRUTO_SHARE_KEY);
    tshare *ts = lua_touserdata(L, -1);
    if (ts) {
        t->share = ts->share;
        t->share_pid = ts->pid;
    }
    lua_setuservalue(L, -2);

    lua_getfield(L, 1, "token");
    size_t toklen;
    const char *token = lua_tolstring(L, -1, &toklen);
    if (!token || !toklen || strlen(token) != toklen || strpbrk(token, "\r\n"))
        return luaL_error(L, "token required (a string without CR, LF or NUL)");
    t->auth_header = malloc(toklen + 32);
    if (!t->auth_header)
        return luaL_error(L, "out of memory");
    memcpy(t->auth_header, "Authorization: Bearer ", 22);
    memcpy(t->auth_header + 22, token, toklen + 1);
    lua_pop(L, 1);

    if (!dup_field(L, 1, "ca_file", &t->ca_file) || !dup_field(L, 1, "proxy", &t->proxy))
        return luaL_error(L, "out of memory");
    lua_getfield(L, 1, "verify_tls");
    t->verify_tls = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    t->low_speed_limit = (long)number_field(L, 1, "low_speed_limit", 0, 0, 2147483647.0);
    t->low_speed_time = (long)number_field(L, 1, "low_speed_time", 0, 0, 2147483647.0);
    t->timeout = required_field(L, 1, "timeout", 0, 1e9);
    t->connect_timeout = required_field(L, 1, "connect_timeout", 0, 1e9);
    t->max_body = required_field(L, 1, "max_body", 1, 9007199254740992.0);
    if (!ensure_multi(t))
        return luaL_error(L, "out of memory");
    return 1;
}

static tcurl *check_curl(lua_State *L)
{
    tcurl *t = luaL_checkudata(L, 1, TRUTO_CURL_MT);
    if (!t->auth_header)
        luaL_error(L, "transport is closed");
    return t;
}

/* ---- building a request ------------------------------------------------- */

/* Rejects header lines that could split into two (CR, LF, NUL). */
static int safe_header_line(const char *s, size_t len)
{
    return strlen(s) == len && !strpbrk(s, "\r\n") && memchr(s, ':', len) != NULL;
}

/* Appends s to *list; on failure frees the whole list and returns 0. */
static int slist_add(struct curl_slist **list, const char *s)
{
    struct curl_slist *grown = curl_slist_append(*list, s);
    if (!grown) {
        curl_slist_free_all(*list);
        *list = NULL;
        return 0;
    }
    *list = grown;
    return 1;
}

/* Frees a header list, wiping each line first: one of them holds the token. */
static void free_headers(struct curl_slist *list)
{
    for (struct curl_slist *l = list; l; l = l->next) {
        volatile char *p = l->data;
        while (*p)
            *p++ = 0;
    }
    curl_slist_free_all(list);
}

/* Builds the request's header list: the token, then the request's lines
 * as they are. libcurl would add "Accept: * / *" and, for a body, a form
 * Content-Type of its own: an empty line of that name stops it, so that
 * nothing goes out that the request did not name. Returns NULL on
 * allocation failure; raises on a malformed line (nothing allocated then). */
static struct curl_slist *build_headers(lua_State *L, tcurl *t, int req)
{
    lua_getfield(L, req, "headers");
    int idx = lua_gettop(L);
    size_t n = lua_istable(L, idx) ? lua_rawlen(L, idx) : 0;
    int has_accept = 0, has_type = 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        size_t len;
        const char *line = lua_tolstring(L, -1, &len);
        if (!line || !safe_header_line(line, len)) {
            luaL_error(L, "invalid header line #%d", (int)i);
            return NULL; /* not reached: luaL_error does not return */
        }
        has_accept |= names(line, "accept:");
        has_type |= names(line, "content-type:");
        lua_pop(L, 1);
    }
    struct curl_slist *list = NULL;
    if (!slist_add(&list, t->auth_header) || !slist_add(&list, "Expect:") ||
        (!has_accept && !slist_add(&list, "Accept:")) ||
        (!has_type && !slist_add(&list, "Content-Type:")))
        return NULL;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        int ok = slist_add(&list, lua_tostring(L, -1));
        lua_pop(L, 1);
        if (!ok)
            return NULL;
    }
    lua_pop(L, 1);
    return list;
}

static void link_running(tcurl *t, slot *s)
{
    s->prev = NULL;
    s->next = t->running;
    if (t->running)
        t->running->prev = s;
    t->running = s;
}

static void unlink_running(tcurl *t, slot *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else if (t->running == s)
        t->running = s->next;
    if (s->next)
        s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

/* The method as libcurl is told it: GET and HEAD by their own options (so
 * that HEAD does not wait for a body), every other one by name; a body is
 * sent only when the request has one, a write without one sends
 * Content-Length: 0. */
static void set_method(CURL *e, const char *method, const char *body, size_t body_len)
{
    int head = strcmp(method, "HEAD") == 0;
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* resets any earlier body */
    curl_easy_setopt(e, CURLOPT_NOBODY, head ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, head || strcmp(method, "GET") == 0 ? NULL : method);
    int write =
        strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    if (body || write) {
        /* copied: the Lua string may be collected while the request runs */
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body ? body : "");
    }
}

/*
 * The request table is at index 2. Sets up s and adds it to the multi
 * handle. Raises on misuse or allocation failure (s is left idle and owns
 * nothing then).
 */
static void start_slot(lua_State *L, tcurl *t, slot *s)
{
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "method");
    lua_getfield(L, 2, "url");
    lua_getfield(L, 2, "body");
    const char *method = lua_tostring(L, -3);
    const char *url = lua_tostring(L, -2);
    size_t body_len = 0;
    const char *body = lua_tolstring(L, -1, &body_len);
    if (!method || !url)
        luaL_error(L, "request: method and url expected");
    if (!ensure_multi(t))
        luaL_error(L, "curl_multi_init failed");
    double timeout = number_field(L, 2, "timeout", t->timeout, 0, 1e9);
    double connect_timeout = number_field(L, 2, "connect_timeout", t->connect_timeout, 0, 1e9);
    double max_body = number_field(L, 2, "max_body", t->max_body, 1, 9007199254740992.0);
    lua_getfield(L, 2, "reuse");
    int reuse = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* a read-ahead: its timeout runs only while someone waits for it, never
     * while the caller's own code works (see wait_slot) */
    lua_getfield(L, 2, "ahead");
    int ahead = lua_toboolean(L, -1);
    lua_pop(L, 1);
    struct curl_slist *headers = build_headers(L, t, 2);
    CURL *e = headers ? take_easy(t) : NULL;
    if (!e) {
        free_headers(headers);
        luaL_error(L, "out of memory");
    }
    s->owner = t;
    s->easy = e;
    s->headers_out = headers;
    s->body_too_large = 0;
    s->sends = 0;
    s->headers_ended = 0;
    s->block_bytes = 0;
    s->length = -1;
    s->refused = NULL;
    s->max_body = (curl_off_t)max_body;
    s->pid = t->pid;
    s->wait_timeout = ahead ? timeout : 0;
    s->waited = 0;
    s->errbuf[0] = 0;
    tbuf_reset(&s->body);
    tbuf_reset(&s->headers);

    curl_easy_setopt(e, CURLOPT_PRIVATE, s);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, s);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf);
    curl_easy_setopt(e, CURLOPT_URL, url);
    set_method(e, method, body, body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, reuse ? 0L : 1L);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, s->max_body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ahead ? 0L : seconds_ms(timeout));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, seconds_ms(connect_timeout));
    lua_pop(L, 3);
    s->state = SLOT_RUNNING;
    link_running(t, s);
    CURLMcode rc = curl_multi_add_handle(t->multi, e);
    if (rc != CURLM_OK) {
        /* never started: finished at once, with the reason */
        snprintf(s->errbuf, sizeof s->errbuf, "curl_multi_add_handle: %s", curl_multi_strerror(rc));
        s->result = CURLE_FAILED_INIT;
        s->state = SLOT_DONE;
        s->added = 0;
    } else {
        s->added = 1;
    }
}

/* Takes s out of the multi handle and returns its easy handle to the pool. */
static void release_slot(slot *s)
{
    tcurl *t = s->owner;
    if (s->easy) {
        if (t && t->pid == getpid() && s->pid == t->pid) {
            if (s->added)
                curl_multi_remove_handle(t->multi, s->easy);
            s->added = 0;
            curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
            give_back_easy(t, s->easy);
        } else if (!t && s->pid == getpid()) {
            curl_easy_cleanup(s->easy);
        } /* else another process's handle, on its sockets: abandoned */
        s->easy = NULL;
        s->added = 0;
    }
    if (t)
        unlink_running(t, s);
    free_headers(s->headers_out);
    s->headers_out = NULL;
    s->state = SLOT_IDLE;
}

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
static void fail_slot(slot *s, const char *what, const char *why)
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
        fail_slot(s, what, why);
}

/* Runs transfers without blocking; 0 when the multi handle cannot (every
 * running request has then failed with the reason). A forked child never
 * drives what its parent started: those transfers run on the parent's
 * connections. */
static int pump(tcurl *t)
{
    if (!ensure_multi(t)) {
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
static int poll_multi(tcurl *t, int ms)
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
static int orphaned(slot *s)
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

static double monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Counts `elapsed` seconds of waiting against a read-ahead's timeout; one
 * whose time is up ends as a timeout. */
static void charge_wait(slot *s, double elapsed)
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
static int poll_ms(const slot *s, int ms)
{
    if (s->state == SLOT_RUNNING && s->wait_timeout > 0) {
        double left = (s->wait_timeout - s->waited) * 1000 + 1;
        if (left < ms)
            ms = left < 1 ? 1 : (int)left;
    }
    return ms;
}

/* Runs transfers until s is done (blocking). */
static void wait_slot(tcurl *t, slot *s)
{
    if (orphaned(s))
        return;
    int ok = pump(t);
    while (ok && s->state == SLOT_RUNNING) {
        double t0 = monotonic();
        ok = poll_multi(t, poll_ms(s, 1000)) && pump(t);
        charge_wait(s, monotonic() - t0);
    }
    fail_slot(s, "curl", "the transfer could not be driven"); /* if not done yet */
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
    double left = until - monotonic();
    if (left <= 0)
        return 1;
    struct timespec ts;
    ts.tv_sec = (time_t)left;
    ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
    return nanosleep(&ts, NULL) == 0;
}

/* transport:pause(seconds) -> true | false, "interrupted": waits seconds,
 * reading the answers of the transfers in flight as they come (they are
 * then ready for their own wait; a read-ahead's timeout does not run, as
 * nobody waits for it), and ends early on SIGINT. */
static int curl_pause(lua_State *L)
{
    tcurl *t = check_curl(L);
    lua_Number s = luaL_checknumber(L, 2);
    if (!(s <= 1e9)) /* also nan and infinity */
        return luaL_argerror(L, 2, "seconds out of range");
    if (!(s > 0)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    double until = monotonic() + s;
    int polled = ensure_multi(t);
    int caught = polled && catch_interrupt(t->multi);
    int signalled = 0;
    while (polled) {
        pump(t);
        double now = monotonic();
        if ((caught && interrupted) || now >= until)
            break;
        double left_ms = (until - now) * 1000 + 1;
        polled = poll_multi(t, left_ms > 1000 ? 1000 : (int)left_ms);
    }
    if (caught) {
        signalled = interrupted;
        release_interrupt();
    }
    if (!signalled && !polled && !sleep_until(until))
        signalled = 1;
    if (signalled) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "interrupted");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- answers ------------------------------------------------------------ */

/* Sets headers[name] = value (name, value on top, popped), or for a name
 * seen before appends value to lists[name] (made with the old value). */
static void add_header(lua_State *L, int headers, int lists)
{
    lua_pushvalue(L, -2);
    lua_rawget(L, lists);
    if (lua_istable(L, -1)) { /* name value list: a third or later value */
        lua_insert(L, -2);
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        lua_pop(L, 2);
        return;
    }
    lua_pop(L, 1);
    lua_pushvalue(L, -2);
    lua_rawget(L, headers);
    if (lua_isnil(L, -1)) { /* the first value */
        lua_pop(L, 1);
        lua_rawset(L, headers);
        return;
    }
    lua_createtable(L, 4, 0); /* name value old list */
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);
    lua_rawset(L, lists);
}

/* headers[name] = the values of lists[name] joined with ", ", each name. */
static void join_lists(lua_State *L, int headers, int lists)
{
    lua_pushnil(L);
    while (lua_next(L, lists)) {
        int list = lua_gettop(L);
        size_t n = lua_rawlen(L, list);
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 1; i <= n; i++) {
            if (i > 1)
                luaL_addlstring(&b, ", ", 2);
            lua_rawgeti(L, list, (lua_Integer)i);
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_pushvalue(L, list - 1);
        lua_insert(L, -2);
        lua_rawset(L, headers);
        lua_pop(L, 1);
    }
}

/* Pushes the answer's headers as a table of lower-case names; repeated
 * headers are joined with ", ", once at the end: linear in the number of
 * lines, however often one name repeats. */
static void push_headers(lua_State *L, const tbuf *raw)
{
    lua_newtable(L);
    int headers = lua_gettop(L);
    lua_newtable(L);
    int lists = headers + 1;
    const char *p = raw->data, *end = p + raw->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *colon = memchr(p, ':', (size_t)(next - p));
        if (colon && colon > p) {
            luaL_Buffer name;
            luaL_buffinit(L, &name);
            for (const char *c = p; c < colon; c++)
                luaL_addchar(&name, (char)tolower((unsigned char)*c));
            luaL_pushresult(&name);
            const char *v = colon + 1, *vend = next;
            while (v < vend && (*v == ' ' || *v == '\t'))
                v++;
            while (vend > v && isspace((unsigned char)vend[-1]))
                vend--;
            lua_pushlstring(L, v, (size_t)(vend - v));
            add_header(L, headers, lists);
        }
        p = next;
    }
    join_lists(L, headers, lists);
    lua_settop(L, headers);
}

/* Failures where the request cannot have left: it was never sent. */
static int never_sent(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_FAILED_INIT;
}

static void set_integer(lua_State *L, const char *field, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, field);
}

static void set_boolean(lua_State *L, const char *field, int v)
{
    lua_pushboolean(L, v);
    lua_setfield(L, -2, field);
}

/* Pushes { kind, message, sends, too_large, stale = false }. */
static void push_failure(lua_State *L, slot *s, CURLcode rc)
{
    int too_large = s->body_too_large || rc == CURLE_FILESIZE_EXCEEDED;
    int sends = never_sent(rc) ? 0 : s->sends;
    lua_createtable(L, 0, 5);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        lua_pushliteral(L, "timeout");
    else
        lua_pushliteral(L, "transport");
    lua_setfield(L, -2, "kind");
    if (s->refused) {
        lua_pushstring(L, s->refused);
    } else if (too_large) {
        char msg[96];
        snprintf(msg, sizeof msg,
                 "response body larger than max_body (%" CURL_FORMAT_CURL_OFF_T " bytes)",
                 s->max_body);
        lua_pushstring(L, msg);
    } else if (s->errbuf[0]) {
        lua_pushstring(L, s->errbuf);
    } else {
        lua_pushstring(L, curl_easy_strerror(rc));
    }
    lua_setfield(L, -2, "message");
    set_integer(L, "sends", sends);
    set_boolean(L, "too_large", too_large);
    set_boolean(L, "stale", 0); /* libcurl re-sends on a dead reused connection itself */
}

/* answer | nil, failure (see the contract at the top) */
static int push_answer(lua_State *L, slot *s)
{
    CURLcode rc = s->result;
    if (rc == CURLE_OK && (s->body.oom || s->headers.oom))
        rc = CURLE_OUT_OF_MEMORY;
    if (rc != CURLE_OK) {
        lua_pushnil(L);
        push_failure(L, s, rc);
        return 2;
    }
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 4);
    set_integer(L, "status", status);
    push_headers(L, &s->headers);
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, s->body.data ? s->body.data : "", s->body.len);
    lua_setfield(L, -2, "body");
    set_integer(L, "sends", s->sends);
    return 1;
}

static void free_slot_buffers(slot *s)
{
    tbuf_free(&s->body);
    tbuf_free(&s->headers);
}

/* ---- Lua: the client ---------------------------------------------------- */

#define TRUTO_REQUEST_MT "truto.request"

/* Pushes a new request userdata for client t (at stack index 1) and starts
 * it with the arguments at 2..7. The garbage collector owns the slot, so a
 * Lua error at any later point cannot leave it dangling. */
static slot *push_started_request(lua_State *L, tcurl *t)
{
    slot *s = lua_newuserdatauv(L, sizeof *s, 1);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, TRUTO_REQUEST_MT);
    lua_pushvalue(L, 1); /* the request keeps its client alive */
    lua_setuservalue(L, -2);
    start_slot(L, t, s);
    return s;
}

/* Pushes the answer of a finished slot and frees what the slot held. */
static int finish(lua_State *L, slot *s)
{
    int n = push_answer(L, s);
    release_slot(s);
    free_slot_buffers(s);
    return n;
}

/*
 * transport:perform(req) -> answer | nil, failure
 * Blocks until the answer is in.
 */
static int curl_perform(lua_State *L)
{
    tcurl *t = check_curl(L);
    slot *s = push_started_request(L, t);
    wait_slot(t, s);
    return finish(L, s);
}

/* transport:pump(): lets running transfers make progress without blocking. */
static int curl_pump(lua_State *L)
{
    pump(check_curl(L));
    return 0;
}

static void free_curl(tcurl *t)
{
    int same_process = t->pid == getpid();
    /* Running slots outlive us only as Lua objects: detach them. */
    for (slot *s = t->running; s;) {
        slot *next = s->next;
        if (same_process && s->easy && s->pid == t->pid) {
            curl_multi_remove_handle(t->multi, s->easy);
            curl_easy_cleanup(s->easy);
        }
        s->easy = NULL;
        s->owner = NULL;
        s->state = SLOT_IDLE;
        s->prev = s->next = NULL;
        s = next;
    }
    t->running = NULL;
    if (same_process) {
        for (int i = 0; i < t->n_idle; i++)
            curl_easy_cleanup(t->idle[i]);
        if (t->multi)
            curl_multi_cleanup(t->multi);
    }
    t->n_idle = 0;
    t->multi = NULL;
    if (t->auth_header) {
        /* wipe the token before giving the memory back */
        volatile char *p = t->auth_header;
        while (*p)
            *p++ = 0;
    }
    free(t->auth_header);
    free(t->ca_file);
    free(t->proxy);
    t->auth_header = t->ca_file = t->proxy = NULL;
}

static int curl_gc(lua_State *L)
{
    free_curl(luaL_checkudata(L, 1, TRUTO_CURL_MT));
    return 0;
}

static int curl_tostring(lua_State *L)
{
    lua_pushfstring(L, "truto.curl (%p)", lua_touserdata(L, 1));
    return 1;
}

/* ---- Lua: requests in flight -------------------------------------------- */

static slot *check_request(lua_State *L)
{
    return luaL_checkudata(L, 1, TRUTO_REQUEST_MT);
}

/*
 * transport:start(req) -> request
 * Starts a request and returns at once; request:wait() gives its answer.
 */
static int curl_start(lua_State *L)
{
    tcurl *t = check_curl(L);
    push_started_request(L, t);
    pump(t);
    return 1;
}

/* request:wait() -> the answer, as transport:perform gives it. Once only. */
static int request_wait(lua_State *L)
{
    slot *s = check_request(L);
    if (s->state == SLOT_IDLE || !s->owner)
        return luaL_error(L, "request was cancelled or already read");
    wait_slot(s->owner, s);
    return finish(L, s);
}

/* request:done() -> whether the answer is in (never blocks) */
static int request_done(lua_State *L)
{
    slot *s = check_request(L);
    if (s->state == SLOT_RUNNING && s->owner && !orphaned(s))
        pump(s->owner);
    lua_pushboolean(L, s->state == SLOT_DONE);
    return 1;
}

/* request:cancel(): abandons the request; never raises. Also __gc/__close. */
static int request_cancel(lua_State *L)
{
    slot *s = check_request(L);
    release_slot(s);
    free_slot_buffers(s);
    return 0;
}

/*
 * transport:wait_any(requests[, timeout]) -> index of a finished request in the array
 * (false when timeout seconds pass first)
 * `requests` (blocking until one finishes), or nil if none is running.
 */
static int curl_wait_any(lua_State *L)
{
    tcurl *t = check_curl(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    size_t n = lua_rawlen(L, 2);
    /* a request of another client is not driven by this one: refuse it
     * (waiting on it here would spin or block forever) */
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (lua_Integer)i);
        slot *s = luaL_testudata(L, -1, TRUTO_REQUEST_MT);
        lua_pop(L, 1);
        if (s && s->state != SLOT_IDLE && s->owner != t)
            return luaL_error(L, "wait_any: request %d belongs to another transport", (int)i);
    }
    /* timeout (optional, seconds): return false when it passes first */
    double limit = luaL_optnumber(L, 3, -1);
    double until = limit >= 0 ? monotonic() + limit : 0;
    double elapsed = 0;
    for (;;) {
        int any_running = 0, ms = 1000;
        int driven = pump(t);
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, 2, (lua_Integer)i);
            slot *s = luaL_testudata(L, -1, TRUTO_REQUEST_MT);
            lua_pop(L, 1);
            if (!s)
                continue;
            orphaned(s);
            if (!driven)
                fail_slot(s, "curl", "the transfer could not be driven");
            charge_wait(s, elapsed);
            if (s->state == SLOT_DONE) {
                lua_pushinteger(L, (lua_Integer)i);
                return 1;
            }
            any_running |= s->state == SLOT_RUNNING && s->owner == t;
            ms = poll_ms(s, ms);
        }
        if (!any_running) {
            lua_pushnil(L);
            return 1;
        }
        double t0 = monotonic();
        if (limit >= 0) {
            if (t0 >= until) {
                lua_pushboolean(L, 0);
                return 1;
            }
            double left_ms = (until - t0) * 1000 + 1;
            if (left_ms < ms)
                ms = (int)left_ms;
        }
        poll_multi(t, ms); /* on failure every running request is done: found next round */
        elapsed = monotonic() - t0;
    }
}

void tcurl_register(lua_State *L)
{
    static const luaL_Reg client_methods[] = {
        {"perform", curl_perform},
        {"start", curl_start},
        {"pump", curl_pump},
        {"wait_any", curl_wait_any},
        {"pause", curl_pause},
        {"close", curl_gc},
        {NULL, NULL},
    };
    static const luaL_Reg request_methods[] = {
        {"wait", request_wait},
        {"done", request_done},
        {"cancel", request_cancel},
        {NULL, NULL},
    };
    /* Once per process: curl_global_init is not thread-safe and must not be
     * undone from __gc while other Lua states may still use libcurl. */
    static int initialised;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_init(&share_locks[i], NULL);
        initialised = 1;
    }
    create_share(L);
    if (luaL_newmetatable(L, TRUTO_CURL_MT)) {
        luaL_newlib(L, client_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, curl_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, curl_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, TRUTO_REQUEST_MT)) {
        luaL_newlib(L, request_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, request_cancel);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, request_cancel);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
}
