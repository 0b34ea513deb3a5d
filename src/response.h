/*
 * response.h - turning an HTTP answer into a Lua value or an error object.
 *
 * Input: status, response headers (a table with lower-case names), body
 * bytes, the method and URL for error messages, and the decoding options
 * (json.h). A 2xx body must be one JSON object (json.h: lua-cjson, exact
 * integers, arrays marked); a DELETE may also answer 204 or nothing, which
 * gives {}. Any other 2xx body (null, a string, an array, nothing) is a
 * "decode" error with the status; a failure status becomes an error object
 * (error.h).
 */
#ifndef TRUTO_RESPONSE_H
#define TRUTO_RESPONSE_H

#include "compat.h"
#include "json.h"

/* core.read_response(status, headers, body, method, url[, opts]) -> value | nil, err */
int tresp_read(lua_State *L);

/* core.decode(text[, opts]) -> value | nil, message */
int tresp_decode_lua(lua_State *L);

/* core.decode_json(text[, opts]) -> value | nil, err (kind "decode") */
int tresp_decode_json(lua_State *L);

#endif
