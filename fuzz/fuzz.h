/*
 * fuzz.h - what every libFuzzer target shares: one Lua state with
 * truto.core loaded, a reader over the fuzz input, and the way a broken
 * invariant is reported (a message on stderr, then abort(), which libFuzzer
 * records as a crash with the input that caused it).
 */
#ifndef TRUTO_FUZZ_H
#define TRUTO_FUZZ_H

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdint.h>

/* The process-wide Lua state, created on first use with the standard
 * libraries, cjson reachable by require, and truto.core loaded. The core
 * table is left in the registry under FZ_CORE. */
#define FZ_CORE "truto.fuzz.core"
lua_State *fz_lua(void);

/* Pushes the named function of truto.core. */
void fz_core_fn(lua_State *L, const char *name);

/* Makes the garbage collector run a young collection at every allocation
 * check, so a C string used after its Lua owner was dropped is freed at
 * once and AddressSanitizer sees the use. Costs speed; used where C code
 * borrows strings from the Lua stack. */
void fz_gc_stress(lua_State *L);

/* Drops the stack and, every so often, collects all garbage. */
void fz_reset(lua_State *L);

/* The module's JSON decoding with the default options (tj_decode, json.h):
 * pushes the value and returns 1, or pushes a message and returns 0. */
int fz_decode(lua_State *L, const char *s, size_t len);

/* Reports a broken invariant and aborts. printf-style. */
void fz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));

#define FZ_CHECK(cond, ...)                                                                        \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fz_fail(__VA_ARGS__);                                                                  \
    } while (0)

/*
 * Whether the known issue `tag` should be let through: the environment
 * variable FUZZ_IGNORE holds a comma-separated list of tags (see README).
 * Known issues are failures by default, so a finding is never hidden.
 */
int fz_ignored(const char *tag);

/* Consumes the fuzz input from the front. Past the end every read gives
 * zeros, so any byte string is a valid input. */
typedef struct {
    const uint8_t *p;
    size_t n;
} fz_reader;

uint8_t fz_byte(fz_reader *r);
uint64_t fz_u64(fz_reader *r);
/* Up to max bytes: returns a pointer into the input and sets *len. */
const char *fz_bytes(fz_reader *r, size_t max, size_t *len);
/* Bytes up to the next NUL (or the end); the NUL is consumed. */
const char *fz_until_nul(fz_reader *r, size_t *len);

/* Stack-balance guard: FZ_KEEP_TOP(L) at the start of a check, then
 * FZ_SAME_TOP(L, what) at the end. */
#define FZ_KEEP_TOP(L) const int fz_top_ = lua_gettop(L)
#define FZ_SAME_TOP(L, what)                                                                       \
    FZ_CHECK(lua_gettop(L) == fz_top_, "%s left %d values on the stack", (what),                   \
             lua_gettop(L) - fz_top_)

#endif
