/*
 * peers/curl_cjson.c - the floor for the static-file scenarios: a bare C
 * loop of libcurl (one easy handle, so one keep-alive connection) and
 * lua-cjson's decode, called through the Lua API as lua-truto calls it.
 * Which lua-cjson is used follows LUA_CPATH, like any Lua program.
 *
 *   curl_cjson list URL        follow next_cursor from URL; prints items=N
 *   curl_cjson get URL COUNT   COUNT GETs of URL, each decoded; prints items=COUNT
 *
 * BENCH_CA names a CA file for https URLs.
 */
#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *data;
    size_t len, cap;
} buf;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
    buf *b = ud;
    size_t add = size * n;
    if (b->len + add + 1 > b->cap) {
        b->cap = (b->len + add + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data)
            return 0;
    }
    memcpy(b->data + b->len, p, add);
    b->len += add;
    return add;
}

static void fetch(CURL *h, const char *url, buf *b)
{
    b->len = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        fprintf(stderr, "GET %s: %s, HTTP %ld\n", url, curl_easy_strerror(rc), status);
        exit(1);
    }
}

/* cjson.decode(body) on top of the stack. */
static void decode(lua_State *L, const buf *b)
{
    lua_pushvalue(L, 1);
    lua_pushlstring(L, b->data, b->len);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        fprintf(stderr, "decode: %s\n", lua_tostring(L, -1));
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "get") == 0 && argc < 4)) {
        fprintf(stderr, "usage: curl_cjson list URL | get URL COUNT\n");
        return 2;
    }
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "decode");
    lua_replace(L, 1);
    lua_settop(L, 1);

    curl_global_init(CURL_GLOBAL_ALL);
    CURL *h = curl_easy_init();
    buf b = {NULL, 0, 0};
    struct curl_slist *hdr = curl_slist_append(NULL, "Accept: application/json");
    hdr = curl_slist_append(hdr, "Authorization: Bearer test-token");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
    if (getenv("BENCH_CA"))
        curl_easy_setopt(h, CURLOPT_CAINFO, getenv("BENCH_CA"));

    long items = 0;
    if (strcmp(argv[1], "list") == 0) {
        char url[4096];
        snprintf(url, sizeof url, "%s", argv[2]);
        for (;;) {
            fetch(h, url, &b);
            decode(L, &b);
            lua_getfield(L, -1, "result");
            items += (long)lua_rawlen(L, -1);
            lua_getfield(L, -2, "next_cursor");
            if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0)
                break;
            snprintf(url, sizeof url, "%s&next_cursor=%s", argv[2], lua_tostring(L, -1));
            lua_settop(L, 1);
        }
    } else {
        long n = atol(argv[3]);
        for (long i = 0; i < n; i++) {
            fetch(h, argv[2], &b);
            decode(L, &b);
            lua_getfield(L, -1, "id");
            if (lua_type(L, -1) == LUA_TSTRING)
                items++;
            lua_settop(L, 1);
        }
    }
    printf("items=%ld\n", items);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    free(b.data);
    lua_close(L);
    return 0;
}
