/* curl_answer.c - a finished request as Lua sees it: the answer table
 * { status, headers, body, sends } with the headers read from the raw
 * lines, or the failure { kind, message, sends, too_large, stale }.
 */
#include "curl_internal.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- answers ------------------------------------------------------------ */

/* Sets headers[name] = value (name, value on top, popped), or for a name
 * seen before appends value to lists[name] (made with the old value). The
 * lists table is made at the first repeated name (*lists 0: none yet), so
 * an answer without one makes no second table. */
static void add_header(lua_State *L, int headers, int *lists)
{
    if (*lists) {
        lua_pushvalue(L, -2);
        lua_rawget(L, *lists);
        if (lua_istable(L, -1)) { /* name value list: a third or later value */
            lua_insert(L, -2);
            lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
            lua_pop(L, 2);
            return;
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, -2);
    lua_rawget(L, headers);
    if (lua_isnil(L, -1)) { /* the first value */
        lua_pop(L, 1);
        lua_rawset(L, headers);
        return;
    }
    if (!*lists) {
        lua_newtable(L); /* name value old lists */
        lua_replace(L, headers + 1);
        *lists = headers + 1;
    }
    lua_createtable(L, 4, 0); /* name value old list */
    lua_insert(L, -2);
    lua_rawseti(L, -2, 1);
    lua_insert(L, -2);
    lua_rawseti(L, -2, 2);
    lua_rawset(L, *lists);
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

/* Pushes the n bytes at s in lower case (a header name). */
static void push_lower(lua_State *L, const char *s, size_t n)
{
    char small[64];
    if (n > sizeof small) {
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        for (size_t i = 0; i < n; i++)
            luaL_addchar(&b, (char)tolower((unsigned char)s[i]));
        luaL_pushresult(&b);
        return;
    }
    for (size_t i = 0; i < n; i++)
        small[i] = (char)tolower((unsigned char)s[i]);
    lua_pushlstring(L, small, n);
}

/* Pushes the answer's headers as a table of lower-case names; repeated
 * headers are joined with ", ", once at the end: linear in the number of
 * lines, however often one name repeats. */
static void push_headers(lua_State *L, const tbuf *raw)
{
    lua_createtable(L, 0, 8);
    int headers = lua_gettop(L);
    lua_pushnil(L); /* the place of the lists table, made at the first repeat */
    int lists = 0;
    const char *p = raw->data, *end = p + raw->len;
    while (p && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        const char *colon = memchr(p, ':', (size_t)(next - p));
        if (colon && colon > p) {
            push_lower(L, p, (size_t)(colon - p));
            const char *v = colon + 1, *vend = next;
            while (v < vend && (*v == ' ' || *v == '\t'))
                v++;
            while (vend > v && isspace((unsigned char)vend[-1]))
                vend--;
            lua_pushlstring(L, v, (size_t)(vend - v));
            add_header(L, headers, &lists);
        }
        p = next;
    }
    if (lists)
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

/* answer | nil, failure (see the contract in transport_curl.c) */
int tcurl_push_answer(lua_State *L, slot *s)
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

void tcurl_free_slot_buffers(slot *s)
{
    tbuf_free(&s->body);
    tbuf_free(&s->headers);
}
