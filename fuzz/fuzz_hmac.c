/*
 * fuzz_hmac.c - core.hmac_sha256_equal(key, message, hex) (hmac.c): the hex
 * of an untrusted X-Truto-Signature against the digest.
 *
 * Input: 1 byte key length k, then k key bytes, 1 byte hex length h (mod
 * 80), h bytes of "hex" (often made of the digest, see below), then the
 * message (the rest).
 *
 * Invariants:
 *   - never raises, and leaves the stack as it was;
 *   - it is true exactly when hex is 64 hex digits whose lower-case form is
 *     core.hmac_sha256(key, message) (64 lower-case hex digits);
 *   - the digest itself, and its upper-case form, are always accepted.
 * A flag bit makes the hex the digest with one byte replaced, so the fuzzer
 * reaches near misses (one digit off, a non-hex byte) as well as noise.
 */
#include "fuzz.h"

#include <ctype.h>
#include <string.h>

static int equal(lua_State *L, const char *key, size_t klen, const char *msg, size_t mlen,
                 const char *hex, size_t hlen)
{
    fz_core_fn(L, "hmac_sha256_equal");
    lua_pushlstring(L, key, klen);
    lua_pushlstring(L, msg, mlen);
    lua_pushlstring(L, hex, hlen);
    FZ_CHECK(lua_pcall(L, 3, 1, 0) == LUA_OK, "hmac_sha256_equal raised: %s", lua_tostring(L, -1));
    FZ_CHECK(lua_isboolean(L, -1), "hmac_sha256_equal gave no boolean");
    int ok = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return ok;
}

/* Whether hex is the digest in either case, by plain comparison. */
static int model(const char *digest, const char *hex, size_t hlen)
{
    if (hlen != 64)
        return 0;
    for (size_t i = 0; i < 64; i++) {
        unsigned char c = (unsigned char)hex[i];
        if (!isxdigit(c) || tolower(c) != digest[i])
            return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fz_lua();
    FZ_KEEP_TOP(L);
    fz_reader r = {data, size};
    size_t klen, hlen, mlen;
    const char *key = fz_bytes(&r, fz_byte(&r), &klen);
    uint8_t hbyte = fz_byte(&r);
    const char *given = fz_bytes(&r, hbyte % 80, &hlen);
    uint8_t pos = fz_byte(&r), repl = fz_byte(&r);
    const char *msg = fz_bytes(&r, size, &mlen);

    fz_core_fn(L, "hmac_sha256");
    lua_pushlstring(L, key, klen);
    lua_pushlstring(L, msg, mlen);
    FZ_CHECK(lua_pcall(L, 2, 1, 0) == LUA_OK, "hmac_sha256 raised: %s", lua_tostring(L, -1));
    size_t dlen;
    const char *d = lua_tolstring(L, -1, &dlen);
    FZ_CHECK(d && dlen == 64 && strspn(d, "0123456789abcdef") == 64,
             "hmac_sha256 gave no hex digest");
    char digest[65], upper[64], hex[80];
    memcpy(digest, d, 65);
    lua_pop(L, 1);
    for (size_t i = 0; i < 64; i++)
        upper[i] = (char)toupper((unsigned char)digest[i]);
    FZ_CHECK(equal(L, key, klen, msg, mlen, digest, 64), "the digest is refused");
    FZ_CHECK(equal(L, key, klen, msg, mlen, upper, 64), "the upper-case digest is refused");

    if (hbyte & 0x80) { /* a near miss: the digest with one byte replaced */
        memcpy(hex, digest, 64);
        hex[pos % 64] = (char)repl;
        hlen = 64;
    } else {
        memcpy(hex, given, hlen);
    }
    int got = equal(L, key, klen, msg, mlen, hex, hlen);
    FZ_CHECK(got == model(digest, hex, hlen), "hex of %zu bytes: got %d, the model says %d", hlen,
             got, !got);
    FZ_SAME_TOP(L, "fuzz_hmac");
    fz_reset(L);
    return 0;
}
