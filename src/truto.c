/*
 * truto.c - luaopen_truto_core: the C half of the module.
 *
 * The public API lives in truto.lua (policy: clients, iterators, argument
 * checks); this file exposes the primitives it is built from, in the
 * LuaSocket manner:
 *   encode_query(params)        -> query string | nil, message
 *   segment(id)                 -> escaped path segment | nil, message
 *   encode_json(value[, name])  -> JSON text | nil, message ("name.a[2]: ...")
 *   decode(text[, opts])        -> value | nil, message
 *   decode_json(text[, opts])   -> value | nil, err (a "decode" error object)
 *   json_info()                 -> { array_mt, integers, compat } (json.h)
 *   read_response(status, headers, body, method, url[, opts]) -> value | nil, err
 *   retry_after(retry_after, ratelimit_reset) -> seconds | nil
 *   sleep(seconds) -> true | false, "interrupted", now() -> monotonic seconds
 *   error(fields)               -> error object
 *   int64(digits | integer)     -> truto.int64 (value.h)
 *   pager([cursor])             -> pager (pager.h)
 *   curl(opts)                  -> libcurl transport (transport_curl.h)
 *   hmac_sha256(key, msg), hmac_sha256_equal(key, msg, hex) (hmac.h)
 *   write_durable, create_exclusive, fsync_dir, getpid, pid_alive (fs.h)
 *   array_mt, error_mt, VERSION
 */
#include "buf.h"
#include "compat.h"
#include "error.h"
#include "fs.h"
#include "hmac.h"
#include "json.h"
#include "pager.h"
#include "query.h"
#include "response.h"
#include "retry.h"
#include "transport_curl.h"
#include "value.h"
#include "version.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* Runs an encoder into a buffer and returns its text or nil, message. */
typedef int (*encoder)(lua_State *L, int idx, tbuf *out, tbuf *err);

static int run_encoder(lua_State *L, encoder encode)
{
    tbuf out, err;
    tbuf_init(&out);
    tbuf_init(&err);
    int ok = encode(L, 1, &out, &err);
    if (ok && out.oom) {
        ok = 0;
        tbuf_adds(&err, "out of memory");
    }
    if (!ok && err.oom) {
        tbuf_free(&out);
        tbuf_free(&err);
        return luaL_error(L, "out of memory");
    }
    if (ok) {
        lua_pushlstring(L, out.data ? out.data : "", out.len);
    } else {
        lua_pushnil(L);
        lua_pushlstring(L, err.data ? err.data : "", err.len);
    }
    tbuf_free(&out);
    tbuf_free(&err);
    return ok ? 1 : 2;
}

static int l_encode_query(lua_State *L)
{
    luaL_checkany(L, 1);
    return run_encoder(L, tq_encode);
}

/* The encoder of encode_json(value[, name]): name at index 2 (checked). */
static int encode_json_named(lua_State *L, int idx, tbuf *out, tbuf *err)
{
    return tj_encode_named(L, idx, lua_tostring(L, 2), out, err);
}

static int l_encode_json(lua_State *L)
{
    luaL_checkany(L, 1);
    luaL_optstring(L, 2, NULL);
    return run_encoder(L, encode_json_named);
}

static int l_segment(lua_State *L)
{
    luaL_checkany(L, 1);
    return run_encoder(L, tq_segment);
}

static int l_retry_after(lua_State *L)
{
    double wait =
        tr_retry_after(luaL_optstring(L, 1, NULL), luaL_optstring(L, 2, NULL), time(NULL));
    if (wait < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, wait);
    return 1;
}

/* core.sleep(seconds) -> true | false, "interrupted": the blocking wait
 * between retries outside nginx. A signal (Ctrl-C) ends it early: the
 * caller gives up (and Lua's SIGINT hook, when set, runs right after). */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s > 0)) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (!(s <= 1e9)) /* also infinity: a wait no caller means */
        return luaL_argerror(L, 1, "seconds out of range");
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - floor(s)) * 1e9);
    if (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "interrupted");
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* core.now() -> seconds on a monotonic clock, for waits and rate limits. */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

/* core.random_hex(n) -> 2n hex digits of n random bytes from the kernel
 * (getrandom: no file to open, fork-safe). For Idempotency-Keys. */
static int l_random_hex(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1 && n <= 64, 1, "1 to 64 bytes");
    unsigned char bytes[64];
    size_t got = 0;
    while (got < (size_t)n) {
        ssize_t r = getrandom(bytes + got, (size_t)n - got, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return luaL_error(L, "getrandom failed: %s", strerror(errno));
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    char out[128];
    for (size_t i = 0; i < got; i++) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 15];
    }
    lua_pushlstring(L, out, 2 * got);
    return 1;
}

/* core.fingerprint(s) -> 16 hex digits (64-bit FNV-1a of s): a name for a
 * rate budget shared by clients of one token, that does not hold it. */
static int l_fingerprint(lua_State *L)
{
    size_t len;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &len);
    unsigned long long h = 14695981039346656037ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    char out[17];
    snprintf(out, sizeof out, "%016llx", h);
    lua_pushstring(L, out);
    return 1;
}

/* The Accept-Encoding libcurl sends for CURLOPT_ACCEPT_ENCODING "": every
 * decoder it was built with, in its own order (the CLI's --dry-run prints it). */
static void push_accept_encoding(lua_State *L)
{
    const curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);
    const char *sep = "";
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (info->features & CURL_VERSION_LIBZ) {
        luaL_addstring(&b, "deflate, gzip");
        sep = ", ";
    }
    if (info->features & CURL_VERSION_BROTLI) {
        luaL_addstring(&b, sep);
        luaL_addstring(&b, "br");
        sep = ", ";
    }
    if (info->features & CURL_VERSION_ZSTD) {
        luaL_addstring(&b, sep);
        luaL_addstring(&b, "zstd");
    }
    luaL_pushresult(&b);
}

int luaopen_truto_core(lua_State *L)
{
    static const luaL_Reg functions[] = {
        {"encode_query", l_encode_query},
        {"encode_json", l_encode_json},
        {"segment", l_segment},
        {"decode", tresp_decode_lua},
        {"decode_json", tresp_decode_json},
        {"json_info", tj_info},
        {"read_response", tresp_read},
        {"retry_after", l_retry_after},
        {"sleep", l_sleep},
        {"now", l_now},
        {"random_hex", l_random_hex},
        {"fingerprint", l_fingerprint},
        {"error", terr_from_table},
        {"int64", tv_int64_new},
        {"pager", tpager_new},
        {"curl", tcurl_new},
        {"hmac_sha256", thmac_sha256},
        {"hmac_sha256_equal", thmac_sha256_equal},
        {NULL, NULL},
    };
    tj_init(L); /* lua-cjson: private instance, capabilities, array metatable */
    terr_register(L);
    tv_register_int64(L);
    tpager_register(L);
    tcurl_register(L);
    luaL_newmetatable(L, TRUTO_ARRAY_MT);
    lua_pop(L, 1);

    luaL_newlib(L, functions);
    tfs_register(L); /* fs.h: durable writes, lock files, pids */
    luaL_getmetatable(L, TRUTO_ARRAY_MT);
    lua_setfield(L, -2, "array_mt");
    luaL_getmetatable(L, TRUTO_ERROR_MT);
    lua_setfield(L, -2, "error_mt");
    lua_pushliteral(L, TRUTO_VERSION);
    lua_setfield(L, -2, "VERSION");
    lua_pushinteger(L, (lua_Integer)TERR_BODY_MAX);
    lua_setfield(L, -2, "ERROR_BODY_MAX");
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, -2, "CURL_VERSION");
    push_accept_encoding(L);
    lua_setfield(L, -2, "CURL_ACCEPT_ENCODING");
    return 1;
}
