/*
 * json_plan.h - where json_compat.c must fix what lua-cjson 2.1.0 decoded,
 * noted by the text scan (json_scan.c) so the fix-up after decoding visits
 * only those places, not every value.
 *
 * One node per array or object, in the order of the text (node 0 is the
 * document when it is one), each with a list of entries: the members or
 * elements that need work. A value needs work when it is an array (its
 * metatable), a number that may come back a float where an integer was
 * written, or a marker string (json_compat.c); a container needs work when
 * it is an array or holds something that does. So an object of strings
 * and booleans inside an array of them costs nothing after decoding.
 *
 * An object entry names its member by the key's bytes in the text, an
 * array entry by its index. Where that could name the wrong value (a key
 * with an escape, or more than TJ_PLAN_KEYS members needing work) the
 * object is marked `full` and walked whole; when one key comes twice the
 * earlier entry is dead (lua-cjson keeps the last). The fix-up checks the
 * shape of every table against its node and walks whole what does not
 * match, so a wrong plan costs time, never a value.
 */
#ifndef TRUTO_JSON_PLAN_H
#define TRUTO_JSON_PLAN_H

#include "json_scan.h"

#include <stddef.h>

#define TJ_PLAN_KEYS 32 /* members needing work an object may have before it is walked whole */
#define TJ_PLAN_DEAD (-2)
#define TJ_PLAN_SCALAR (-1)

typedef struct {
    size_t key, key_len; /* object member: the key's bytes in the text */
    size_t index;        /* array element: its index (from 1) */
    int node;            /* the container's node, TJ_PLAN_SCALAR, or TJ_PLAN_DEAD */
    int next;            /* the next entry of the same container, or -1 */
} tj_entry;

typedef struct {
    int first, last;    /* its entries, -1 when none */
    unsigned entries;   /* how many */
    char kind;          /* '[' or '{' */
    char full;          /* walk it whole */
    unsigned keys_seen; /* a bit per (key length, first byte) of its entries */
    tj_entry slot;      /* where it is in its parent (node: itself; key_len
                         found when it closes needing work) */
} tj_node;

typedef struct tj_plan {
    int numbers; /* every number needs work (integers from floats) */
    int broken;  /* out of memory or too deep: fix up every value */
    tj_node *nodes;
    size_t n_nodes, cap_nodes;
    tj_entry *list;
    size_t n_list, cap_list;
    const unsigned char *text;
    size_t text_len;
    /* while scanning */
    size_t key; /* the last object key starts at text[key] (its length is
                   found when an entry needs it, which few do) */
    size_t depth;
    int open[TJ_SCAN_DEPTH];     /* the open containers' nodes */
    char kind[TJ_SCAN_DEPTH];    /* and their kinds */
    size_t count[TJ_SCAN_DEPTH]; /* commas so far, of the open arrays: the
                                    element being read is count + 1 */
} tj_plan;

void tj_plan_init(tj_plan *p, const char *text, size_t len, int numbers);
void tj_plan_free(tj_plan *p);

/* Called by the scan, in the order of the text (the first two inline: they
 * run for every comma and key). */

/* A comma: in an array, the next element starts. */
static inline void tj_plan_comma(tj_plan *p)
{
    if (p->depth > 0 && p->depth <= TJ_SCAN_DEPTH && p->kind[p->depth - 1] == '[')
        p->count[p->depth - 1]++;
}

/* An object key starts at text[at] (after its quote). */
static inline void tj_plan_key(tj_plan *p, size_t at)
{
    p->key = at;
}

void tj_plan_open(tj_plan *p, char kind); /* [ or { */
void tj_plan_close(tj_plan *p);           /* ] or } */
void tj_plan_scalar(tj_plan *p);          /* the value just started needs work */

#endif
