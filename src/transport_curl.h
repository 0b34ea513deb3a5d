/*
 * transport_curl.h - the libcurl transport: performs one fully built
 * request and hands back status, headers and body bytes. It knows nothing
 * of Truto's JSON; response.c reads what it returns.
 */
#ifndef TRUTO_TRANSPORT_CURL_H
#define TRUTO_TRANSPORT_CURL_H

#include "compat.h"

#define TRUTO_CURL_MT "truto.curl"

/* core.curl(settings) -> transport; settings: token, ca_file, proxy (NULL:
 * the environment's; "": none), verify_tls, low_speed_limit, low_speed_time,
 * and timeout, connect_timeout, max_body (required: a request naming none
 * gets these; the client passes truto.defaults'). Everything else comes
 * with each request (see transport_curl.c). */
int tcurl_new(lua_State *L);

/* Creates the metatable and initialises libcurl; call once from luaopen. */
void tcurl_register(lua_State *L);

#endif
