/*
 * transport_curl.h - the libcurl transport: performs one fully built
 * request and hands back status, headers and body bytes. It knows nothing
 * of Truto's JSON; response.c reads what it returns.
 */
#ifndef TRUTO_TRANSPORT_CURL_H
#define TRUTO_TRANSPORT_CURL_H

#include "compat.h"

#define TRUTO_CURL_MT "truto.curl"

/* core.curl(opts) -> transport; opts: token, user_agent, ca_file, proxy,
 * verify_tls, timeout, connect_timeout, max_body (seconds and bytes). */
int tcurl_new(lua_State *L);

/* Creates the metatable and initialises libcurl; call once from luaopen. */
void tcurl_register(lua_State *L);

#endif
