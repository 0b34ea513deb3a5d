/* json_plan.c - building the fix-up plan during the text scan, see json_plan.h. */
#include "json_plan.h"

#include <stdlib.h>
#include <string.h>

void tj_plan_init(tj_plan *p, const char *text, size_t len, int numbers)
{
    p->numbers = numbers;
    p->broken = 0;
    p->nodes = NULL;
    p->list = NULL;
    p->n_nodes = p->cap_nodes = p->n_list = p->cap_list = 0;
    p->key = 0;
    p->depth = 0;
    p->text = (const unsigned char *)text;
    p->text_len = len;
}

void tj_plan_free(tj_plan *p)
{
    free(p->nodes);
    free(p->list);
    p->nodes = NULL;
    p->list = NULL;
}

/* The first allocation of nodes or entries: one per `bytes` of the text
 * (about what a page of a listing has), so a page grows them once at
 * most instead of by doubling from a few. */
#define FIRST(p, bytes) ((p)->text_len / (bytes) + 16)

/* Room for one more of n items of size sz in *v (capacity *cap); 0 when out of memory. */
static int grow(void **v, size_t *cap, size_t n, size_t sz, size_t first)
{
    if (n < *cap)
        return 1;
    size_t want = *cap ? *cap * 2 : first;
    void *nv = realloc(*v, want * sz);
    if (!nv)
        return 0;
    *v = nv;
    *cap = want;
    return 1;
}

/* The node of the innermost open container, or NULL. */
static tj_node *current(tj_plan *p)
{
    return p->depth > 0 && p->depth <= TJ_SCAN_DEPTH ? &p->nodes[p->open[p->depth - 1]] : NULL;
}

/* The slot of the value just started in the current container (the key's
 * length not yet known). */
static void slot_here(const tj_plan *p, tj_entry *e)
{
    e->key = p->key;
    e->key_len = 0;
    e->index = p->count[p->depth - 1] + 1;
    e->next = -1;
}

/* Finds the length of e's key (up to its closing quote); returns whether it has an escape. */
static int key_length(const tj_plan *p, tj_entry *e)
{
    const unsigned char *t = p->text;
    size_t i = e->key, n = p->text_len;
    int escaped = 0;
    while (i < n && t[i] != '"') {
        if (t[i] == '\\')
            i++, escaped = 1;
        i++;
    }
    e->key_len = (i < n ? i : n) - e->key;
    return escaped;
}

/* A later member with the same key: the earlier is not the value lua-cjson kept. */
static void kill_same_key(tj_plan *p, const tj_node *parent, const tj_entry *e)
{
    for (int k = parent->first; k >= 0; k = p->list[k].next) {
        tj_entry *old = &p->list[k];
        const unsigned char *a = p->text + old->key, *b = p->text + e->key;
        if (old->key_len == e->key_len && (e->key_len == 0 || a[0] == b[0]) &&
            memcmp(a, b, e->key_len) == 0)
            old->node = TJ_PLAN_DEAD;
    }
}

/* Adds e (its slot in parent) to parent's entries, or marks parent to be walked whole. */
static void add_entry(tj_plan *p, tj_node *parent, const tj_entry *e, int escaped)
{
    if (parent->full)
        return;
    if (parent->kind == '{') {
        if (escaped || parent->entries >= TJ_PLAN_KEYS) {
            parent->full = 1;
            return;
        }
        /* one bit per (length, first byte): most keys cannot have come before */
        const unsigned char *k = p->text + e->key;
        unsigned bit = 1u << ((e->key_len * 7u + (e->key_len ? k[0] : 0u)) % 32u);
        if (parent->keys_seen & bit)
            kill_same_key(p, parent, e);
        parent->keys_seen |= bit;
    }
    if (!grow((void **)&p->list, &p->cap_list, p->n_list, sizeof *p->list, FIRST(p, 64))) {
        p->broken = 1;
        return;
    }
    int at = (int)p->n_list++;
    p->list[at] = *e;
    if (parent->last >= 0)
        p->list[parent->last].next = at;
    else
        parent->first = at;
    parent->last = at;
    parent->entries++;
}

void tj_plan_scalar(tj_plan *p)
{
    tj_node *parent = current(p);
    if (!parent || p->broken)
        return; /* the document itself: json_compat.c visits it */
    tj_entry e;
    slot_here(p, &e);
    e.node = TJ_PLAN_SCALAR;
    int escaped = parent->kind == '{' && key_length(p, &e);
    add_entry(p, parent, &e, escaped);
}

void tj_plan_open(tj_plan *p, char kind)
{
    if (p->depth >= TJ_SCAN_DEPTH || p->n_nodes >= (size_t)0x7fffffff ||
        !grow((void **)&p->nodes, &p->cap_nodes, p->n_nodes, sizeof *p->nodes, FIRST(p, 48))) {
        p->broken = 1;
        p->depth++;
        return;
    }
    int at = (int)p->n_nodes++;
    tj_node *n = &p->nodes[at];
    n->first = n->last = -1;
    n->entries = 0;
    n->kind = kind;
    n->full = 0;
    n->keys_seen = 0;
    if (p->depth > 0)
        slot_here(p, &n->slot);
    n->slot.node = at;
    p->open[p->depth] = at;
    p->kind[p->depth] = kind;
    p->count[p->depth] = 0;
    p->depth++;
}

void tj_plan_close(tj_plan *p)
{
    if (p->depth == 0)
        return;
    if (p->depth > TJ_SCAN_DEPTH || p->broken) {
        p->depth--;
        return;
    }
    tj_node *n = &p->nodes[p->open[--p->depth]];
    int needy = n->kind == '[' || n->entries > 0 || n->full;
    tj_node *parent = current(p);
    if (needy && parent) {
        int escaped = parent->kind == '{' && key_length(p, &n->slot);
        add_entry(p, parent, &n->slot, escaped);
    }
}
