/* store_batch.c — the completion batch (store.h rt_store_batch): typed rows filled by the
 * executor, written by rt_store_apply as the jsonb parameters of the S_APPLY_* statements
 * (store_queue.c). The JSON text is written here directly from the rows: no jansson tree
 * is built for a batch, only the rows' own JSON values (outputs, states) are dumped. */
#include "store_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---------- filling ---------- */

enum { C_STEPS, C_ENQUEUE, C_REQUEUE, C_DEQUEUE, C_RUNS, C_ATTEMPTS, C_DROP, C_UNWAIT, C_WAKE };

/* Room for one more element in *arr (n used, cap[which] allocated); false when out of
 * memory (the batch is then marked and refused by rt_store_apply). */
static bool grow(rt_store_batch *b, void **arr, size_t n, size_t elem, int which)
{
    if (n < b->cap[which])
        return true;
    size_t cap = b->cap[which] ? b->cap[which] * 2 : 16;
    void *p = realloc(*arr, cap * elem);
    if (!p) {
        b->nomem = true;
        return false;
    }
    *arr = p;
    b->cap[which] = cap;
    return true;
}

#define ADD(b, field, count, which) grow((b), (void **)&(b)->field, (b)->count, sizeof *(b)->field, (which))

static char *dup_or_null(rt_store_batch *b, const char *s)
{
    if (!s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        b->nomem = true;
    return d;
}

static json_t *ref(json_t *v)
{
    return v ? json_incref(v) : NULL;
}

void rt_store_batch_init(rt_store_batch *b)
{
    memset(b, 0, sizeof *b);
}

void rt_store_batch_add_step(rt_store_batch *b, const rt_batch_step *row)
{
    if (!ADD(b, steps, n_steps, C_STEPS))
        return;
    rt_batch_step *r = &b->steps[b->n_steps++];
    *r = *row;
    r->step_id = dup_or_null(b, row->step_id);
    r->error = dup_or_null(b, row->error);
    r->output = ref(row->output);
    r->error_detail = ref(row->error_detail);
    r->state = ref(row->state);
}

void rt_store_batch_add_enqueue(rt_store_batch *b, const rt_batch_enqueue *row)
{
    if (!ADD(b, enqueue, n_enqueue, C_ENQUEUE))
        return;
    rt_batch_enqueue *r = &b->enqueue[b->n_enqueue++];
    *r = *row;
    r->step_id = dup_or_null(b, row->step_id);
    r->ckey = dup_or_null(b, row->ckey);
}

void rt_store_batch_add_requeue(rt_store_batch *b, const rt_batch_requeue *row)
{
    if (!ADD(b, requeue, n_requeue, C_REQUEUE))
        return;
    rt_batch_requeue *r = &b->requeue[b->n_requeue++];
    *r = *row;
    r->step_id = dup_or_null(b, row->step_id);
}

void rt_store_batch_add_dequeue(rt_store_batch *b, int64_t queue_id)
{
    if (ADD(b, dequeue, n_dequeue, C_DEQUEUE))
        b->dequeue[b->n_dequeue++] = queue_id;
}

void rt_store_batch_add_run(rt_store_batch *b, const rt_batch_run *row)
{
    if (!ADD(b, runs, n_runs, C_RUNS))
        return;
    rt_batch_run *r = &b->runs[b->n_runs++];
    *r = *row;
    r->output = ref(row->output);
    r->error = dup_or_null(b, row->error);
}

void rt_store_batch_add_attempt(rt_store_batch *b, const rt_batch_attempt *row)
{
    if (!ADD(b, attempts, n_attempts, C_ATTEMPTS))
        return;
    rt_batch_attempt *r = &b->attempts[b->n_attempts++];
    *r = *row;
    r->step_id = dup_or_null(b, row->step_id);
    r->error = dup_or_null(b, row->error);
    r->error_detail = ref(row->error_detail);
}

void rt_store_batch_add_drop(rt_store_batch *b, const char *run_id)
{
    if (!ADD(b, drop_runs, n_drop_runs, C_DROP))
        return;
    snprintf(b->drop_runs[b->n_drop_runs++].run_id, sizeof b->drop_runs[0].run_id, "%s", run_id);
}

void rt_store_batch_add_unwait(rt_store_batch *b, const char *run_id, const char *step_id)
{
    if (!ADD(b, unwait, n_unwait, C_UNWAIT))
        return;
    rt_batch_unwait *r = &b->unwait[b->n_unwait++];
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
    r->step_id = dup_or_null(b, step_id);
}

void rt_store_batch_add_wake(rt_store_batch *b, const char *run_id, const char *step_id, json_t *patch)
{
    if (!ADD(b, wake, n_wake, C_WAKE))
        return;
    rt_batch_wake *r = &b->wake[b->n_wake++];
    snprintf(r->run_id, sizeof r->run_id, "%s", run_id);
    r->step_id = dup_or_null(b, step_id);
    r->patch = ref(patch);
}

void rt_store_batch_free(rt_store_batch *b)
{
    for (size_t i = 0; i < b->n_steps; i++) {
        free(b->steps[i].step_id);
        free(b->steps[i].error);
        json_decref(b->steps[i].output);
        json_decref(b->steps[i].error_detail);
        json_decref(b->steps[i].state);
    }
    for (size_t i = 0; i < b->n_enqueue; i++) {
        free(b->enqueue[i].step_id);
        free(b->enqueue[i].ckey);
    }
    for (size_t i = 0; i < b->n_requeue; i++)
        free(b->requeue[i].step_id);
    for (size_t i = 0; i < b->n_runs; i++) {
        json_decref(b->runs[i].output);
        free(b->runs[i].error);
    }
    for (size_t i = 0; i < b->n_attempts; i++) {
        free(b->attempts[i].step_id);
        free(b->attempts[i].error);
        json_decref(b->attempts[i].error_detail);
    }
    for (size_t i = 0; i < b->n_unwait; i++)
        free(b->unwait[i].step_id);
    for (size_t i = 0; i < b->n_wake; i++) {
        free(b->wake[i].step_id);
        json_decref(b->wake[i].patch);
    }
    free(b->steps);
    free(b->enqueue);
    free(b->requeue);
    free(b->dequeue);
    free(b->runs);
    free(b->attempts);
    free(b->drop_runs);
    free(b->unwait);
    free(b->wake);
    rt_store_batch_init(b);
}

/* Appends the *sn elements of size elem at src to *dst (count *dn): ownership moves and *sn
 * becomes 0. Out of memory: the rows stay in src (freed with it) and the batch is marked. */
static void move_rows(rt_store_batch *b, void **dst, size_t *dn, const void *src, size_t *sn, size_t elem, int which)
{
    size_t n = *sn;
    if (n == 0)
        return;
    if (*dn + n > b->cap[which]) {
        size_t cap = b->cap[which] ? b->cap[which] : 16;
        while (cap < *dn + n)
            cap *= 2;
        void *p = realloc(*dst, cap * elem);
        if (!p) {
            b->nomem = true;
            return;
        }
        *dst = p;
        b->cap[which] = cap;
    }
    memcpy((char *)*dst + *dn * elem, src, n * elem);
    *dn += n;
    *sn = 0;
}

#define MOVE(d, s, field, count, which)                                                                           \
    move_rows((d), (void **)&(d)->field, &(d)->count, (s)->field, &(s)->count, sizeof *(s)->field, (which))

void rt_store_batch_move(rt_store_batch *dst, rt_store_batch *src)
{
    MOVE(dst, src, steps, n_steps, C_STEPS);
    MOVE(dst, src, enqueue, n_enqueue, C_ENQUEUE);
    MOVE(dst, src, requeue, n_requeue, C_REQUEUE);
    MOVE(dst, src, dequeue, n_dequeue, C_DEQUEUE);
    MOVE(dst, src, runs, n_runs, C_RUNS);
    MOVE(dst, src, attempts, n_attempts, C_ATTEMPTS);
    MOVE(dst, src, drop_runs, n_drop_runs, C_DROP);
    MOVE(dst, src, unwait, n_unwait, C_UNWAIT);
    MOVE(dst, src, wake, n_wake, C_WAKE);
    dst->notify = dst->notify || src->notify;
    dst->nomem = dst->nomem || src->nomem;
    rt_store_batch_free(src); /* its arrays, and any rows that could not move */
}

void rt_store_batch_copy(rt_store_batch *dst, const rt_store_batch *src)
{
    for (size_t i = 0; i < src->n_steps; i++)
        rt_store_batch_add_step(dst, &src->steps[i]);
    for (size_t i = 0; i < src->n_enqueue; i++)
        rt_store_batch_add_enqueue(dst, &src->enqueue[i]);
    for (size_t i = 0; i < src->n_requeue; i++)
        rt_store_batch_add_requeue(dst, &src->requeue[i]);
    for (size_t i = 0; i < src->n_dequeue; i++)
        rt_store_batch_add_dequeue(dst, src->dequeue[i]);
    for (size_t i = 0; i < src->n_runs; i++)
        rt_store_batch_add_run(dst, &src->runs[i]);
    for (size_t i = 0; i < src->n_attempts; i++)
        rt_store_batch_add_attempt(dst, &src->attempts[i]);
    for (size_t i = 0; i < src->n_drop_runs; i++)
        rt_store_batch_add_drop(dst, src->drop_runs[i].run_id);
    for (size_t i = 0; i < src->n_unwait; i++)
        rt_store_batch_add_unwait(dst, src->unwait[i].run_id, src->unwait[i].step_id);
    for (size_t i = 0; i < src->n_wake; i++)
        rt_store_batch_add_wake(dst, src->wake[i].run_id, src->wake[i].step_id, src->wake[i].patch);
    dst->notify = src->notify;
    dst->nomem = dst->nomem || src->nomem;
}

/* ---------- the rows as JSON text ---------- */

typedef struct jbuf {
    char *p;
    size_t len, cap;
    bool nomem;
} jbuf;

static void jb_raw(jbuf *j, const char *s, size_t n)
{
    if (j->nomem)
        return;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 1024;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *p = realloc(j->p, cap);
        if (!p) {
            j->nomem = true;
            return;
        }
        j->p = p;
        j->cap = cap;
    }
    memcpy(j->p + j->len, s, n);
    j->len += n;
    j->p[j->len] = '\0';
}

static void jb_lit(jbuf *j, const char *s)
{
    jb_raw(j, s, strlen(s));
}

/* A JSON string (null for NULL). Bytes that are not UTF-8 become U+FFFD: jsonb refuses
 * them, and one bad error text must not fail a whole batch. */
static void jb_str(jbuf *j, const char *s)
{
    if (!s) {
        jb_lit(j, "null");
        return;
    }
    jb_raw(j, "\"", 1);
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + strlen(s);
    while (*p) {
        const unsigned char *run = p;
        while (*p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
            p++;
        jb_raw(j, (const char *)run, (size_t)(p - run));
        if (!*p)
            break;
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            jb_raw(j, esc, 2);
            p++;
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            jb_raw(j, esc, 6);
            p++;
        } else {
            size_t n = rt_utf8_seq_len(p, (size_t)(end - p));
            if (n)
                jb_raw(j, (const char *)p, n);
            else
                jb_lit(j, "\\ufffd");
            p += n ? n : 1;
        }
    }
    jb_raw(j, "\"", 1);
}

static void jb_int(jbuf *j, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%" PRId64, v);
    jb_raw(j, num, (size_t)n);
}

static int jb_dump_cb(const char *buffer, size_t size, void *data)
{
    jb_raw(data, buffer, size);
    return ((jbuf *)data)->nomem ? -1 : 0;
}

static void jb_json(jbuf *j, json_t *v)
{
    if (!v)
        jb_lit(j, "null");
    else if (json_dump_callback(v, jb_dump_cb, j, JSON_COMPACT | JSON_ENCODE_ANY) != 0)
        j->nomem = true;
}

/* ,"key": */
static void jb_key(jbuf *j, const char *key, bool first)
{
    jb_raw(j, first ? "{\"" : ",\"", 2);
    jb_lit(j, key);
    jb_raw(j, "\":", 2);
}

static void steps_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_steps; i++) {
        const rt_batch_step *r = &b->steps[i];
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "run_id", true), jb_str(j, r->run_id);
        jb_key(j, "step_id", false), jb_str(j, r->step_id);
        jb_key(j, "status", false), jb_str(j, rt_step_status_name(r->status));
        jb_key(j, "attempts", false), jb_int(j, r->attempts);
        jb_key(j, "output", false), jb_json(j, r->output);
        jb_key(j, "error", false), jb_str(j, r->error);
        jb_key(j, "error_detail", false), jb_json(j, r->error_detail);
        jb_key(j, "state", false), jb_json(j, r->state);
        jb_key(j, "started_at", false), jb_int(j, r->started_at);
        jb_key(j, "finished_at", false), jb_int(j, r->finished_at);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void enqueue_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_enqueue; i++) {
        const rt_batch_enqueue *r = &b->enqueue[i];
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "run_id", true), jb_str(j, r->run_id);
        jb_key(j, "step_id", false), jb_str(j, r->step_id);
        jb_key(j, "priority", false), jb_int(j, r->priority);
        jb_key(j, "slow", false), jb_lit(j, r->slow ? "true" : "false");
        jb_key(j, "run_at", false), jb_int(j, r->run_at);
        jb_key(j, "ckey", false), jb_str(j, r->ckey);
        jb_key(j, "climit", false), jb_int(j, r->climit);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void requeue_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_requeue; i++) {
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "id", true), jb_int(j, b->requeue[i].queue_id);
        jb_key(j, "run_at", false), jb_int(j, b->requeue[i].run_at);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void dequeue_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_dequeue; i++) {
        if (i)
            jb_raw(j, ",", 1);
        jb_int(j, b->dequeue[i]);
    }
    jb_raw(j, "]", 1);
}

static void runs_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_runs; i++) {
        const rt_batch_run *r = &b->runs[i];
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "id", true), jb_str(j, r->run_id);
        jb_key(j, "status", false), jb_str(j, rt_run_status_name(r->status));
        jb_key(j, "output", false), jb_json(j, r->output);
        jb_key(j, "error", false), jb_str(j, r->error);
        jb_key(j, "started_at", false), jb_int(j, r->started_at);
        jb_key(j, "finished_at", false), jb_int(j, r->finished_at);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void attempts_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_attempts; i++) {
        const rt_batch_attempt *r = &b->attempts[i];
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "run_id", true), jb_str(j, r->run_id);
        jb_key(j, "step_id", false), jb_str(j, r->step_id);
        jb_key(j, "attempt", false), jb_int(j, r->attempt);
        jb_key(j, "error", false), jb_str(j, r->error);
        jb_key(j, "error_detail", false), jb_json(j, r->error_detail);
        jb_key(j, "started_at", false), jb_int(j, r->started_at);
        jb_key(j, "finished_at", false), jb_int(j, r->finished_at);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void drop_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_drop_runs; i++) {
        if (i)
            jb_raw(j, ",", 1);
        jb_str(j, b->drop_runs[i].run_id);
    }
    jb_raw(j, "]", 1);
}

static void unwait_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_unwait; i++) {
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "run_id", true), jb_str(j, b->unwait[i].run_id);
        jb_key(j, "step_id", false), jb_str(j, b->unwait[i].step_id);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

static void wake_json(jbuf *j, const rt_store_batch *b)
{
    jb_raw(j, "[", 1);
    for (size_t i = 0; i < b->n_wake; i++) {
        if (i)
            jb_raw(j, ",", 1);
        jb_key(j, "run_id", true), jb_str(j, b->wake[i].run_id);
        jb_key(j, "step_id", false), jb_str(j, b->wake[i].step_id);
        jb_key(j, "patch", false), jb_json(j, b->wake[i].patch);
        jb_raw(j, "}", 1);
    }
    jb_raw(j, "]", 1);
}

/* ---------- writing ---------- */

typedef void (*to_json_fn)(jbuf *j, const rt_store_batch *b);

static const to_json_fn writers[RT_BATCH_PART_COUNT] = {
    [RT_BATCH_STEPS] = steps_json,       [RT_BATCH_ENQUEUE] = enqueue_json, [RT_BATCH_REQUEUE] = requeue_json,
    [RT_BATCH_DEQUEUE] = dequeue_json,   [RT_BATCH_RUNS] = runs_json,       [RT_BATCH_ATTEMPTS] = attempts_json,
    [RT_BATCH_DROP] = drop_json,         [RT_BATCH_UNWAIT] = unwait_json,   [RT_BATCH_WAKE] = wake_json,
};

char *rt_store_batch_json(const rt_store_batch *b, rt_batch_part part)
{
    jbuf j = {0};
    writers[part](&j, b);
    if (j.nomem) {
        free(j.p);
        return NULL;
    }
    return j.p;
}

/* Runs statement id with the rows of part as its first parameter (and extra as its second
 * when n_params is 2: NULL is SQL null); nothing when there are no rows. */
static rt_status apply_rows(rt_store *st, stmt_id id, const rt_store_batch *b, size_t n, rt_batch_part part,
                            const char *extra, int n_params, rt_error *err)
{
    if (n == 0)
        return RT_OK;
    char *text = rt_store_batch_json(b, part);
    if (!text)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    const char *params[2] = {text, extra};
    PGresult *r = NULL;
    rt_status s = rt_stmt_run(st, id, n_params, params, &r, err);
    PQclear(r);
    free(text);
    return s;
}

/* steps, dequeue and runs of a batch in one statement; nothing to do when all are empty. */
static rt_status apply_hot(rt_store *st, const char *owner, const rt_store_batch *b, rt_error *err)
{
    if (b->n_steps + b->n_dequeue + b->n_runs == 0)
        return RT_OK;
    char *text[3] = {rt_store_batch_json(b, RT_BATCH_STEPS), rt_store_batch_json(b, RT_BATCH_DEQUEUE),
                     rt_store_batch_json(b, RT_BATCH_RUNS)};
    rt_status s = RT_OK;
    if (!text[0] || !text[1] || !text[2]) {
        s = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    } else {
        const char *params[] = {text[0], text[1], owner, text[2]};
        PGresult *r = NULL;
        s = rt_stmt_run(st, S_APPLY_HOT, 4, params, &r, err);
        PQclear(r);
    }
    for (int i = 0; i < 3; i++)
        free(text[i]);
    return s;
}

rt_status rt_store_apply(rt_store *st, const char *owner, const rt_store_batch *b, rt_error *err)
{
    if (b->nomem)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory (completion batch)");
    rt_status s = apply_hot(st, owner, b, err);
    if (s == RT_OK)
        s = apply_rows(st, S_APPLY_ENQUEUE, b, b->n_enqueue, RT_BATCH_ENQUEUE, NULL, 1, err);
    if (s == RT_OK)
        s = apply_rows(st, S_APPLY_REQUEUE, b, b->n_requeue, RT_BATCH_REQUEUE, owner, 2, err);
    if (s == RT_OK)
        s = apply_rows(st, S_APPLY_ATTEMPTS, b, b->n_attempts, RT_BATCH_ATTEMPTS, NULL, 1, err);
    if (s == RT_OK)
        s = apply_rows(st, S_APPLY_DROP, b, b->n_drop_runs, RT_BATCH_DROP, NULL, 1, err);
    if (s == RT_OK)
        s = apply_rows(st, S_APPLY_UNWAIT, b, b->n_unwait, RT_BATCH_UNWAIT, NULL, 1, err);
    if (s == RT_OK)
        s = apply_rows(st, S_WAKE_STEPS, b, b->n_wake, RT_BATCH_WAKE, NULL, 1, err);
    if (s == RT_OK)
        s = apply_rows(st, S_WAKE_QUEUE, b, b->n_wake, RT_BATCH_WAKE, NULL, 1, err);
    if (s == RT_OK && (b->notify || b->n_wake > 0))
        s = rt_store_wake(st, err);
    return s;
}
