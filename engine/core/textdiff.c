/* textdiff.c — longest common subsequence over lines, then hunks with context. Quadratic
 * in lines, hence the cap (a workflow is a few hundred lines). */
#include "textdiff.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct lines {
    const char **at;
    size_t *len;
    size_t n;
} lines;

static int split(const char *t, lines *l)
{
    size_t cap = 16;
    l->n = 0;
    l->at = malloc(cap * sizeof *l->at);
    l->len = malloc(cap * sizeof *l->len);
    if (!l->at || !l->len)
        return -1;
    while (t && *t) {
        const char *nl = strchr(t, '\n');
        size_t len = nl ? (size_t)(nl - t) : strlen(t);
        if (l->n == cap) {
            cap *= 2;
            const char **a = realloc(l->at, cap * sizeof *a);
            if (a)
                l->at = a;
            size_t *b = realloc(l->len, cap * sizeof *b);
            if (b)
                l->len = b;
            if (!a || !b)
                return -1;
        }
        l->at[l->n] = t;
        l->len[l->n++] = len;
        t += len + (nl ? 1 : 0);
    }
    return 0;
}

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void put(buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->oom)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static int same(const lines *a, size_t i, const lines *b, size_t j)
{
    return a->len[i] == b->len[j] && !memcmp(a->at[i], b->at[j], a->len[i]);
}

/* ops: ' ' keep, '-' from a, '+' from b, in order. */
static char *script(const lines *a, const lines *b, size_t *n_ops)
{
    size_t n = a->n, m = b->n;
    char *ops = malloc(n + m + 1);
    if (!ops)
        return NULL;
    size_t k = 0;
    if (n > RT_TEXTDIFF_MAX_LINES || m > RT_TEXTDIFF_MAX_LINES) {
        memset(ops, '-', n);
        memset(ops + n, '+', m);
        *n_ops = n + m;
        return ops;
    }
    unsigned *t = calloc((n + 1) * (m + 1), sizeof *t); /* t[i][j]: LCS of a[i..], b[j..] */
    if (!t) {
        free(ops);
        return NULL;
    }
    for (size_t i = n; i-- > 0;)
        for (size_t j = m; j-- > 0;)
            t[i * (m + 1) + j] = same(a, i, b, j) ? t[(i + 1) * (m + 1) + j + 1] + 1
                                 : t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1] ? t[(i + 1) * (m + 1) + j]
                                                                                         : t[i * (m + 1) + j + 1];
    size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && same(a, i, b, j)) {
            ops[k++] = ' ';
            i++, j++;
        } else if (i < n && (j == m || t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1])) {
            ops[k++] = '-'; /* removals before additions, as diff -u prints them */
            i++;
        } else {
            ops[k++] = '+';
            j++;
        }
    }
    free(t);
    *n_ops = k;
    return ops;
}

char *rt_text_diff(const char *a_text, const char *b_text, const char *label_a, const char *label_b)
{
    lines a = {0}, b = {0};
    buf out = {0};
    char *ops = NULL;
    size_t n_ops = 0;
    if (split(a_text, &a) || split(b_text, &b) || !(ops = script(&a, &b, &n_ops))) {
        out.oom = 1;
        goto done;
    }
    put(&out, "%s", "");
    size_t changes = 0;
    for (size_t k = 0; k < n_ops; k++)
        changes += ops[k] != ' ';
    if (changes == 0)
        goto done;
    put(&out, "--- %s\n+++ %s\n", label_a, label_b);
    enum { CTX = 3 };
    size_t k = 0, ai = 0, bj = 0; /* line numbers before ops[k] */
    while (k < n_ops) {
        if (ops[k] == ' ') {
            k++, ai++, bj++;
            continue;
        }
        /* A hunk: back up CTX kept lines, run on while changes are within 2*CTX. */
        size_t back = 0;
        while (back < CTX && back < k && ops[k - back - 1] == ' ')
            back++;
        size_t start = k - back, a0 = ai - back, b0 = bj - back, end = k, kept = 0;
        for (size_t x = k; x < n_ops; x++) {
            if (ops[x] == ' ') {
                if (++kept > 2 * CTX)
                    break;
            } else {
                kept = 0;
                end = x + 1;
            }
        }
        size_t stop = end;
        while (stop < n_ops && stop < end + CTX && ops[stop] == ' ')
            stop++;
        size_t na = 0, nb = 0;
        for (size_t x = start; x < stop; x++) {
            na += ops[x] != '+';
            nb += ops[x] != '-';
        }
        put(&out, "@@ -%zu,%zu +%zu,%zu @@\n", na ? a0 + 1 : a0, na, nb ? b0 + 1 : b0, nb);
        size_t ia = a0, jb = b0;
        for (size_t x = start; x < stop; x++) {
            if (ops[x] == '+') {
                put(&out, "+%.*s\n", (int)b.len[jb], b.at[jb]);
                jb++;
            } else if (ops[x] == '-') {
                put(&out, "-%.*s\n", (int)a.len[ia], a.at[ia]);
                ia++;
            } else {
                put(&out, " %.*s\n", (int)a.len[ia], a.at[ia]);
                ia++, jb++;
            }
        }
        k = stop, ai = ia, bj = jb;
    }
done:
    free(ops);
    free(a.at);
    free(a.len);
    free(b.at);
    free(b.len);
    if (out.oom) {
        free(out.p);
        return NULL;
    }
    return out.p;
}
