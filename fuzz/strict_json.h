/*
 * strict_json.h - whether bytes are one RFC 8259 JSON text, nothing more.
 *
 * lua-cjson 2.1.0 also takes "+1", "0x1F", "007", "inf", "nan" and stops at
 * a NUL byte; the decode targets use this to tell a disagreement on real
 * JSON (always a bug) from one on text only cjson's leniency accepts.
 */
#ifndef TRUTO_FUZZ_STRICT_JSON_H
#define TRUTO_FUZZ_STRICT_JSON_H

#include <stddef.h>

int sj_valid(const char *s, size_t len);

#endif
