/*
 * response.h - turning an HTTP answer into a Lua value or an error object.
 *
 * Input: status, response headers (a table with lower-case names), body
 * bytes, and the method and URL for error messages. 2xx bodies are JSON
 * decoded with lua-cjson and their numbers normalized (json.h); an empty
 * body gives {}. Anything else becomes an error object (error.h).
 */
#ifndef TRUTO_RESPONSE_H
#define TRUTO_RESPONSE_H

#include "compat.h"

/* Registry key of cjson.decode, cached at module load. */
#define TRUTO_DECODE "truto.cjson.decode"

/*
 * Decodes the JSON text [s, s+len) with numbers normalized. Pushes the value
 * and returns 1, or pushes cjson's message and returns 0.
 */
int tresp_decode(lua_State *L, const char *s, size_t len);

/* core.read_response(status, headers, body, method, url) -> value | nil, err */
int tresp_read(lua_State *L);

/* core.decode(text) -> value | nil, message */
int tresp_decode_lua(lua_State *L);

#endif
