/*
 * error.h - the one constructor of lua-truto error objects.
 *
 * Every failure (HTTP status, transport, timeout, undecodable body, looping
 * cursor) becomes a table with the same fields and the "truto.error"
 * metatable, whose __tostring gives one line. Fields: kind, status, error,
 * message, body, headers, retry_after, remote, insight, method, url.
 */
#ifndef TRUTO_ERROR_H
#define TRUTO_ERROR_H

#include "compat.h"

#define TRUTO_ERROR_MT "truto.error"
#define TERR_BODY_MAX ((size_t)64 * 1024)
#define TERR_URL_SHOWN 300 /* bytes of the URL tostring() shows */
#define TERR_LINE_MAX 4096 /* bytes of tostring(err) at most */

typedef struct {
    const char *kind;    /* "http" | "transport" | "timeout" | "decode" | "loop" */
    int status;          /* HTTP status, 0 when there was no answer */
    const char *message; /* used when the body gives none */
    const char *method;
    const char *url;
    int body;    /* stack index of the decoded body or raw text, 0 if none */
    int headers; /* stack index of the response headers table, 0 if none */
} terr_desc;

/* Pushes a new error object described by d. */
void terr_push(lua_State *L, const terr_desc *d);

/* Creates the metatable; call once from luaopen. */
void terr_register(lua_State *L);

/* core.error(fields): sets the error metatable on a table of fields. */
int terr_from_table(lua_State *L);

#endif
