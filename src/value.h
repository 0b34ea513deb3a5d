/*
 * value.h - reading Lua values the way both encoders (query.c, json_encode.c)
 * need them: what shape a table has, its string keys in a stable order,
 * and numbers written without a spurious ".0".
 */
#ifndef TRUTO_VALUE_H
#define TRUTO_VALUE_H

#include "compat.h"

#include <locale.h>
#include <stddef.h>

/* Registry key of the array metatable: the one truto.array() puts on a
 * table and every decoded array carries (cjson.array_mt where lua-cjson
 * has one, json_cjson.c). cjson.empty_array_mt, when there is one, is under the
 * second key; both mark a table as an array. */
#define TRUTO_ARRAY_MT "truto.array"
#define TRUTO_EMPTY_ARRAY_MT "truto.cjson.empty_array_mt"

typedef enum {
    TV_EMPTY,  /* no entries at all */
    TV_ARRAY,  /* keys are exactly 1..n */
    TV_MAP,    /* every key is a string */
    TV_MIXED,  /* string keys and integer keys together */
    TV_SPARSE, /* integer keys that are not 1..n */
    TV_BADKEY  /* a key that is neither string nor integer */
} tv_shape;

/* Shape of the table at idx; *n receives the array length or key count. */
tv_shape tv_shape_of(lua_State *L, int idx, size_t *n);

/* Whether the table at idx carries an array metatable (see above). */
int tv_is_marked_array(lua_State *L, int idx);

/*
 * Pushes a userdata holding the string keys of the map at idx sorted
 * bytewise, and returns a pointer to its first element. The key strings
 * stay valid while the table at idx is alive and unchanged.
 */
typedef struct {
    const char *s;
    size_t len;
} tv_key;
tv_key *tv_sorted_keys(lua_State *L, int idx, size_t n);

/*
 * Writes the number at idx into out (at least TV_NUMBUF bytes): integers
 * and integral floats as integers, other floats in the shortest form that
 * reads back to the same double. Returns the length, or 0 for NaN and
 * infinities, which have no encoding.
 */
#define TV_NUMBUF 40
size_t tv_format_number(lua_State *L, int idx, char *out);

/*
 * strtod and snprintf("%.*g") in the "C" locale whatever the process's
 * LC_NUMERIC is (os.setlocale, a host program): '.' is the decimal point
 * on every path, as JSON, query strings and HTTP headers need.
 */
double tv_strtod(const char *s);
int tv_format_double(char *out, size_t n, int precision, double d);

/* Runs the code between enter and leave in the "C" numeric locale (this
 * thread only; nothing changes when no "C" locale object could be made). */
typedef struct {
    locale_t old;
} tv_c_numeric;
void tv_c_numeric_enter(tv_c_numeric *c);
void tv_c_numeric_leave(tv_c_numeric *c);

/*
 * truto.int64: an exact 64-bit integer in a userdata, for the runtimes
 * without integers (LuaJIT, 5.1), where a JSON integer past 2^53 has no
 * exact number. tostring() gives its digits, == and < compare two of them,
 * v:tonumber() gives the nearest double, and the JSON and query encoders
 * write it as the same integer literal. core.int64(digits | integer)
 * makes one.
 */
#define TRUTO_INT64_MT "truto.int64"
void tv_push_int64(lua_State *L, long long v);
/* Whether idx is a truto.int64; its value in *v. */
int tv_to_int64(lua_State *L, int idx, long long *v);
/* Creates the metatable; call once from luaopen. */
void tv_register_int64(lua_State *L);
/* core.int64(digits | integer) -> truto.int64 */
int tv_int64_new(lua_State *L);

/* Lua type name of idx, with "null" for cjson.null. */
const char *tv_typename(lua_State *L, int idx);

/* Whether idx is cjson.null (a NULL light userdata). */
int tv_is_null(lua_State *L, int idx);

#endif
