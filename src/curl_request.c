/* curl_request.c - one request on its easy handle: the callbacks libcurl
 * calls with the answer's bytes (they only copy bytes into C buffers and
 * check the framing; no Lua code runs inside libcurl), the options every
 * handle gets, and building, starting and releasing a request (a slot).
 */
#include "curl_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Bytes of one header block (status line and headers, or trailers): the
 * nginx transport's bound too, so both refuse the same answers. */
#define MAX_HEADER_BLOCK (256L * 1024)

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

/* Options that are the same for every request of the client. */
void tcurl_set_client_options(tcurl *t, CURL *e)
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

/* Seconds -> milliseconds for libcurl's long options, in range. */
static long seconds_ms(double seconds)
{
    double ms = seconds * 1000.0;
    return ms < 1 ? 1 : ms > 2147483647.0 ? 2147483647L : (long)ms;
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
void tcurl_start_slot(lua_State *L, tcurl *t, slot *s)
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
    if (!tcurl_ensure_multi(t))
        luaL_error(L, "curl_multi_init failed");
    double timeout = tcurl_number_field(L, 2, "timeout", t->timeout, 0, 1e9);
    double connect_timeout =
        tcurl_number_field(L, 2, "connect_timeout", t->connect_timeout, 0, 1e9);
    double max_body = tcurl_number_field(L, 2, "max_body", t->max_body, 1, 9007199254740992.0);
    lua_getfield(L, 2, "reuse");
    int reuse = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    /* a read-ahead: its timeout runs only while someone waits for it, never
     * while the caller's own code works (see tcurl_wait_slot) */
    lua_getfield(L, 2, "ahead");
    int ahead = lua_toboolean(L, -1);
    lua_pop(L, 1);
    struct curl_slist *headers = build_headers(L, t, 2);
    CURL *e = headers ? tcurl_take_easy(t) : NULL;
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
void tcurl_release_slot(slot *s)
{
    tcurl *t = s->owner;
    if (s->easy) {
        if (t && t->pid == getpid() && s->pid == t->pid) {
            if (s->added)
                curl_multi_remove_handle(t->multi, s->easy);
            s->added = 0;
            curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, NULL);
            tcurl_give_back_easy(t, s->easy);
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
