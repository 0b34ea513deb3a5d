/*
 * hmac.c - HMAC-SHA256 and its constant-time check, over OpenSSL's libcrypto,
 * for webhook signatures (truto.webhook owns the policy: the header, the
 * tolerance, the dedupe).
 *
 *   hmac_sha256(key, message)          -> 64 lower-case hex digits
 *   hmac_sha256_equal(key, message, hex) -> boolean: whether hex (64 hex
 *       digits, either case) is the HMAC-SHA256 of message keyed with key;
 *       the digests are compared with CRYPTO_memcmp, whose time does not
 *       depend on where they differ.
 */
#include "hmac.h"

#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define DIGEST_LEN ((size_t)32)

/* The digest of message under key into out; 0 when libcrypto fails. */
static int digest(const char *key, size_t key_len, const char *msg, size_t msg_len,
                  unsigned char out[DIGEST_LEN])
{
    static const unsigned char empty[1] = {0};
    unsigned int len = 0;
    if (key_len > INT_MAX)
        return 0;
    const unsigned char *k = key_len ? (const unsigned char *)key : empty;
    const unsigned char *m = msg_len ? (const unsigned char *)msg : empty;
    if (!HMAC(EVP_sha256(), k, (int)key_len, m, msg_len, out, &len))
        return 0;
    return len == DIGEST_LEN;
}

/* The value of one hex digit, or -1. */
static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The digest of arguments 1 (key) and 2 (message); 0 when libcrypto fails. */
static int compute(lua_State *L, unsigned char out[DIGEST_LEN])
{
    size_t key_len, msg_len;
    const char *key = luaL_checklstring(L, 1, &key_len);
    const char *msg = luaL_checklstring(L, 2, &msg_len);
    luaL_argcheck(L, key_len <= INT_MAX, 1, "key too long");
    return digest(key, key_len, msg, msg_len, out);
}

int thmac_sha256(lua_State *L)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char out[DIGEST_LEN];
    char text[2 * DIGEST_LEN];
    if (!compute(L, out))
        return luaL_error(L, "libcrypto: HMAC-SHA256 failed");
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        text[2 * i] = hex[out[i] >> 4];
        text[2 * i + 1] = hex[out[i] & 15];
    }
    lua_pushlstring(L, text, sizeof text);
    return 1;
}

int thmac_sha256_equal(lua_State *L)
{
    size_t hex_len;
    const char *given = luaL_checklstring(L, 3, &hex_len);
    unsigned char out[DIGEST_LEN], want[DIGEST_LEN];
    if (!compute(L, out))
        return luaL_error(L, "libcrypto: HMAC-SHA256 failed");
    if (hex_len != 2 * DIGEST_LEN) { /* the length is no secret: Truto's is fixed */
        lua_pushboolean(L, 0);
        return 1;
    }
    int bad = 0;
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        int hi = hex_value((unsigned char)given[2 * i]);
        int lo = hex_value((unsigned char)given[2 * i + 1]);
        bad |= (hi < 0) | (lo < 0);
        want[i] = (unsigned char)(((hi & 15) << 4) | (lo & 15));
    }
    int same = CRYPTO_memcmp(out, want, DIGEST_LEN) == 0;
    OPENSSL_cleanse(out, sizeof out);
    lua_pushboolean(L, same && !bad);
    return 1;
}
