/* transport_curl.c - one libcurl easy handle per client, see transport_curl.h.
 *
 * The handle is reused for every request so sequential calls share one
 * keep-alive connection. Our libcurl callbacks only copy bytes into C
 * buffers; no Lua code runs inside libcurl, so no Lua error can unwind
 * through its frames.
 */
#include "transport_curl.h"
#include "buf.h"
#include "version.h"

#include <ctype.h>
#include <stdio.h>
#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_MAX_BODY (64L * 1024 * 1024)

typedef struct {
    CURL *easy;
    pid_t pid;          /* process that created easy (see ensure_handle) */
    char *auth_header;  /* "Authorization: Bearer ..."; never shown anywhere */
    char *user_agent;
    char *ca_file;
    char *proxy;
    int verify_tls;
    long timeout_ms;
    long connect_timeout_ms;
    long low_speed_limit; /* bytes per second ... */
    long low_speed_time;  /* ... for this many seconds, else abort */
    curl_off_t max_body;
    int body_too_large;
    tbuf body;
    tbuf headers; /* raw header lines of the last response */
    char errbuf[CURL_ERROR_SIZE];
} tcurl;

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    tcurl *t = ud;
    size_t len = size * n;
    if ((curl_off_t)(t->body.len + len) > t->max_body) {
        t->body_too_large = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    tbuf_add(&t->body, data, len);
    return t->body.oom ? 0 : len;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    tcurl *t = ud;
    size_t len = size * n;
    /* A new status line starts a new header block (after 1xx answers). */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0)
        tbuf_reset(&t->headers);
    tbuf_add(&t->headers, data, len);
    return t->headers.oom ? 0 : len;
}

/* "lua-truto/0.1.0 libcurl/7.88.1 Lua 5.4" */
static char *default_user_agent(void)
{
    char ua[128];
    snprintf(ua, sizeof ua, "lua-truto/%s libcurl/%s %s", TRUTO_VERSION,
             curl_version_info(CURLVERSION_NOW)->version, LUA_VERSION);
    return strdup(ua);
}

static char *dup_opt_string(lua_State *L, int opts, const char *name)
{
    lua_getfield(L, opts, name);
    const char *s = lua_tostring(L, -1);
    char *copy = s ? strdup(s) : NULL;
    lua_pop(L, 1);
    return copy;
}

static long opt_ms(lua_State *L, int opts, const char *name, double dflt)
{
    lua_getfield(L, opts, name);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return (long)(v * 1000.0);
}

/* Options that never change for the life of the handle. */
static void set_static_options(tcurl *t)
{
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_USERAGENT, t->user_agent);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, t->verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, t->verify_tls ? 2L : 0L);
    if (t->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
    if (t->proxy)
        curl_easy_setopt(e, CURLOPT_PROXY, t->proxy);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, t->max_body);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, t->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, t->low_speed_time);
}

/*
 * A handle inherited through fork() shares its sockets with the parent;
 * closing them here could send a TLS close_notify on the parent's
 * connection. The child therefore abandons the inherited handle and
 * starts its own.
 */
static int ensure_handle(tcurl *t)
{
    if (t->easy && t->pid == getpid())
        return 1;
    t->easy = curl_easy_init();
    t->pid = getpid();
    if (!t->easy)
        return 0;
    set_static_options(t);
    return 1;
}

int tcurl_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    tcurl *t = lua_newuserdatauv(L, sizeof *t, 0);
    memset(t, 0, sizeof *t);
    tbuf_init(&t->body);
    tbuf_init(&t->headers);
    luaL_setmetatable(L, TRUTO_CURL_MT); /* from here on __gc frees what we add */

    lua_getfield(L, 1, "token");
    size_t toklen;
    const char *token = lua_tolstring(L, -1, &toklen);
    if (!token || !toklen)
        return luaL_error(L, "token required");
    t->auth_header = malloc(toklen + 32);
    if (!t->auth_header)
        return luaL_error(L, "out of memory");
    memcpy(t->auth_header, "Authorization: Bearer ", 22);
    memcpy(t->auth_header + 22, token, toklen + 1);
    lua_pop(L, 1);

    t->user_agent = dup_opt_string(L, 1, "user_agent");
    if (!t->user_agent)
        t->user_agent = default_user_agent();
    t->ca_file = dup_opt_string(L, 1, "ca_file");
    t->proxy = dup_opt_string(L, 1, "proxy");
    lua_getfield(L, 1, "verify_tls");
    t->verify_tls = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    t->timeout_ms = opt_ms(L, 1, "timeout", 30);
    t->connect_timeout_ms = opt_ms(L, 1, "connect_timeout", 10);
    t->low_speed_limit = opt_ms(L, 1, "low_speed_limit", 0) / 1000;
    t->low_speed_time = opt_ms(L, 1, "low_speed_time", 0) / 1000;
    lua_getfield(L, 1, "max_body");
    t->max_body = lua_isnumber(L, -1) ? (curl_off_t)lua_tonumber(L, -1) : DEFAULT_MAX_BODY;
    lua_pop(L, 1);
    if (!ensure_handle(t))
        return luaL_error(L, "curl_easy_init failed");
    return 1;
}

static tcurl *check_curl(lua_State *L)
{
    tcurl *t = luaL_checkudata(L, 1, TRUTO_CURL_MT);
    if (!t->auth_header)
        luaL_error(L, "transport is closed");
    return t;
}

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

/* Builds the request's header list: ours first, then the caller's.
 * Returns NULL on allocation failure; raises on a malformed line. */
static struct curl_slist *build_headers(lua_State *L, tcurl *t, int idx, int has_body)
{
    struct curl_slist *list = NULL;
    if (!slist_add(&list, t->auth_header) || !slist_add(&list, "Accept: application/json") ||
        !slist_add(&list, "Expect:"))
        return NULL;
    if (has_body && !slist_add(&list, "Content-Type: application/json"))
        return NULL;
    size_t n = lua_istable(L, idx) ? lua_rawlen(L, idx) : 0;
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i);
        size_t len;
        const char *line = lua_tolstring(L, -1, &len);
        if (!line || !safe_header_line(line, len)) {
            curl_slist_free_all(list);
            luaL_error(L, "invalid header line #%d", (int)i);
        }
        int ok = slist_add(&list, line);
        lua_pop(L, 1);
        if (!ok)
            return NULL;
    }
    return list;
}

/* Pushes the last response's headers as a table of lower-case names;
 * repeated headers are joined with ", ". */
static void push_headers(lua_State *L, tcurl *t)
{
    lua_newtable(L);
    const char *p = t->headers.data, *end = p + t->headers.len;
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
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isstring(L, -1)) {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(vend - v));
                lua_concat(L, 3);
            } else {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(vend - v));
            }
            lua_rawset(L, -3);
        }
        p = next;
    }
}

/* Failures where the server cannot have seen the request, so that even a
 * non-idempotent one may be sent again. */
static int never_sent(CURLcode rc)
{
    return rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
           rc == CURLE_COULDNT_RESOLVE_PROXY;
}

static int transport_failure(lua_State *L, tcurl *t, CURLcode rc)
{
    lua_pushnil(L);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        lua_pushliteral(L, "timeout");
    } else {
        lua_pushliteral(L, "transport");
    }
    if (t->body_too_large || rc == CURLE_FILESIZE_EXCEEDED)
        lua_pushfstring(L, "response body larger than max_body (%d bytes)", (int)t->max_body);
    else if (t->errbuf[0])
        lua_pushstring(L, t->errbuf);
    else
        lua_pushstring(L, curl_easy_strerror(rc));
    lua_pushboolean(L, never_sent(rc));
    lua_pushboolean(L, t->body_too_large || rc == CURLE_FILESIZE_EXCEEDED);
    return 5;
}

/* Optional per-call seconds at idx, else the client's milliseconds. */
static long call_ms(lua_State *L, int idx, long dflt)
{
    return lua_isnumber(L, idx) ? (long)(lua_tonumber(L, idx) * 1000.0) : dflt;
}

/* transport:perform(method, url, header_lines, body[, timeout, connect_timeout])
 *   -> status, headers, body | nil, kind, message, never_sent, too_large */
static int curl_perform(lua_State *L)
{
    tcurl *t = check_curl(L);
    const char *method = luaL_checkstring(L, 2);
    const char *url = luaL_checkstring(L, 3);
    size_t body_len = 0;
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    if (!ensure_handle(t))
        return luaL_error(L, "curl_easy_init failed");
    struct curl_slist *headers = build_headers(L, t, 4, body != NULL);
    if (!headers)
        return luaL_error(L, "out of memory");

    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L); /* resets any earlier body */
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") ? method : NULL);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, call_ms(L, 6, t->timeout_ms));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, call_ms(L, 7, t->connect_timeout_ms));
    tbuf_reset(&t->body);
    tbuf_reset(&t->headers);
    t->body_too_large = 0;
    t->errbuf[0] = 0;

    CURLcode rc = curl_easy_perform(e);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    if (rc == CURLE_OK && (t->body.oom || t->headers.oom))
        return luaL_error(L, "out of memory reading the response");
    if (rc != CURLE_OK)
        return transport_failure(L, t, rc);

    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, status);
    push_headers(L, t);
    lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
    /* Keep memory flat: a huge answer should not pin its buffer forever. */
    if (t->body.cap > 4 * 1024 * 1024)
        tbuf_free(&t->body);
    return 3;
}

static void free_curl(tcurl *t)
{
    if (t->easy && t->pid == getpid())
        curl_easy_cleanup(t->easy);
    t->easy = NULL;
    if (t->auth_header) {
        /* wipe the token before giving the memory back */
        volatile char *p = t->auth_header;
        while (*p)
            *p++ = 0;
    }
    free(t->auth_header);
    free(t->user_agent);
    free(t->ca_file);
    free(t->proxy);
    t->auth_header = t->user_agent = t->ca_file = t->proxy = NULL;
    tbuf_free(&t->body);
    tbuf_free(&t->headers);
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

void tcurl_register(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"perform", curl_perform},
        {"close", curl_gc},
        {NULL, NULL},
    };
    /* Once per process: curl_global_init is not thread-safe and must not be
     * undone from __gc while other Lua states may still use libcurl. */
    static int initialised;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        initialised = 1;
    }
    if (luaL_newmetatable(L, TRUTO_CURL_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, curl_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, curl_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
