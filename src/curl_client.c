/* curl_client.c - the client (a truto.curl userdata): its settings, its
 * multi handle and pool of easy handles, what a forked child does with
 * what it inherited, the Lua state's share of connections and TLS
 * sessions, and freeing it all.
 */
#include "curl_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
double tcurl_number_field(lua_State *L, int idx, const char *name, double dflt, double lo,
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

/*
 * Handles inherited through fork() share their sockets with the parent;
 * closing them here could send a TLS close_notify on the parent's
 * connection. A child therefore abandons what it inherited (deliberately
 * not freed: freeing would close those sockets) and starts afresh.
 */
int tcurl_ensure_multi(tcurl *t)
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

CURL *tcurl_take_easy(tcurl *t)
{
    if (t->n_idle > 0)
        return t->idle[--t->n_idle];
    CURL *e = curl_easy_init();
    if (e) {
        tcurl_set_client_options(t, e);
        curl_easy_setopt(e, CURLOPT_SHARE, t->share_pid == getpid() ? t->share : NULL);
    }
    return e;
}

void tcurl_give_back_easy(tcurl *t, CURL *e)
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
    t->low_speed_limit = (long)tcurl_number_field(L, 1, "low_speed_limit", 0, 0, 2147483647.0);
    t->low_speed_time = (long)tcurl_number_field(L, 1, "low_speed_time", 0, 0, 2147483647.0);
    t->timeout = required_field(L, 1, "timeout", 0, 1e9);
    t->connect_timeout = required_field(L, 1, "connect_timeout", 0, 1e9);
    t->max_body = required_field(L, 1, "max_body", 1, 9007199254740992.0);
    if (!tcurl_ensure_multi(t))
        return luaL_error(L, "out of memory");
    return 1;
}

void tcurl_free(tcurl *t)
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

/* Initialises libcurl (once per process: curl_global_init is not
 * thread-safe and must not be undone from __gc while other Lua states may
 * still use libcurl) and creates the state's share. */
void tcurl_init_state(lua_State *L)
{
    static int initialised;
    if (!initialised) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
            pthread_mutex_init(&share_locks[i], NULL);
        initialised = 1;
    }
    create_share(L);
}
