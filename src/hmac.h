/*
 * hmac.h - HMAC-SHA256 over libcrypto for webhook signatures (see hmac.c).
 */
#ifndef TRUTO_HMAC_H
#define TRUTO_HMAC_H

#include "compat.h"

/* core.hmac_sha256(key, message) -> 64 lower-case hex digits. */
int thmac_sha256(lua_State *L);

/* core.hmac_sha256_equal(key, message, hex) -> boolean, in constant time. */
int thmac_sha256_equal(lua_State *L);

#endif
