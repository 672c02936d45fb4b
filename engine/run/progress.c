/* progress.c — steps' latest progress, written behind the steps' backs (progress.h).
 *
 * A table of running steps that reported, one entry per run_id:step_id, guarded by one
 * mutex: a report replaces the entry's pending value; the writer thread wakes every
 * TICK_MS and writes, in one statement, every pending value whose step was last written at
 * least WRITE_EVERY_MS ago. Entries idle for IDLE_DROP_MS are dropped, so the table holds
 * about the steps running now. A value that cannot be written (database away) is kept
 * until the next try; a newer report replaces it. */
#include "progress.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "metrics.h"
#include "store.h"
#include "store_progress.h"
#include "util.h"

#define TICK_MS 200
#define WRITE_EVERY_MS 1000
#define IDLE_DROP_MS 10000
#define MAX_ENTRIES 10000 /* reports past this many steps are dropped (and counted) */

typedef struct entry {
    char *run_id, *step_id;
    json_t *pending;     /* owned, or NULL */
    int64_t written_ms;  /* rt_mono_ms() of the last write; 0 = never */
    int64_t touched_ms;  /* of the last report */
    struct entry *next;
} entry;

struct rt_progress {
    const rt_config *cfg;
    pthread_t thread;
    pthread_mutex_t mu; /* guards entries, n_entries, stopping */
    pthread_cond_t cond;
    entry *entries;
    size_t n_entries;
    bool stopping;
    rt_store *st; /* the thread's */
    int64_t failure_logged_ms;
};

static void entry_free(entry *e)
{
    free(e->run_id);
    free(e->step_id);
    json_decref(e->pending);
    free(e);
}

void rt_progress_report(const rt_step_ctx *ctx, json_t *progress)
{
    rt_progress *p = ctx->progress_arg;
    if (!p || !ctx->run_id || !ctx->step_id || !json_is_object(progress))
        return;
    json_t *copy = json_deep_copy(progress);
    if (!copy)
        return;
    json_object_set_new(copy, "attempt", json_integer(ctx->attempt));
    pthread_mutex_lock(&p->mu);
    entry *e = p->entries;
    while (e && (strcmp(e->run_id, ctx->run_id) || strcmp(e->step_id, ctx->step_id)))
        e = e->next;
    if (!e && p->n_entries < MAX_ENTRIES && (e = calloc(1, sizeof *e))) {
        e->run_id = strdup(ctx->run_id);
        e->step_id = strdup(ctx->step_id);
        if (!e->run_id || !e->step_id) {
            entry_free(e);
            e = NULL;
        } else {
            e->next = p->entries;
            p->entries = e;
            p->n_entries++;
        }
    }
    if (e) {
        json_decref(e->pending);
        e->pending = copy;
        e->touched_ms = rt_mono_ms();
    } else {
        json_decref(copy);
    }
    pthread_mutex_unlock(&p->mu);
}

/* With p->mu held: the values due now (taken out of their entries); drops idle entries. */
static json_t *take_due(rt_progress *p, int64_t now, bool all)
{
    json_t *rows = json_array();
    for (entry **pe = &p->entries; *pe;) {
        entry *e = *pe;
        if (e->pending && (all || !e->written_ms || now - e->written_ms >= WRITE_EVERY_MS)) {
            json_array_append_new(rows, json_pack("{s:s, s:s, s:o}", "run_id", e->run_id, "step_id", e->step_id,
                                                  "progress", e->pending));
            e->pending = NULL;
            e->written_ms = now;
        }
        if (!e->pending && now - e->touched_ms >= IDLE_DROP_MS) {
            *pe = e->next;
            entry_free(e);
            p->n_entries--;
            continue;
        }
        pe = &e->next;
    }
    return rows;
}

/* With p->mu held, after a write of rows: a stored value's step counts its second from
 * now, when the write is done (so two writes never commit less than a second apart); a
 * value the write did not store goes back, unless a newer one came. */
static void after_write(rt_progress *p, json_t *rows, bool stored)
{
    int64_t now = rt_mono_ms();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *run_id = json_string_value(json_object_get(row, "run_id"));
        const char *step_id = json_string_value(json_object_get(row, "step_id"));
        for (entry *e = p->entries; e; e = e->next) {
            if (!strcmp(e->run_id, run_id) && !strcmp(e->step_id, step_id)) {
                if (stored) {
                    e->written_ms = now;
                } else {
                    if (!e->pending)
                        e->pending = json_incref(json_object_get(row, "progress"));
                    e->written_ms = 0;
                }
                break;
            }
        }
    }
}

static rt_status write_rows(rt_progress *p, json_t *rows, rt_error *err)
{
    if (!p->st || !rt_store_healthy(p->st)) {
        rt_store_close(p->st);
        p->st = NULL;
        rt_status s = rt_store_open(p->cfg->database_url, &p->st, err);
        if (s != RT_OK)
            return s;
    }
    return rt_store_progress_write(p->st, rows, err);
}

static void flush(rt_progress *p, bool all)
{
    pthread_mutex_lock(&p->mu);
    json_t *rows = take_due(p, rt_mono_ms(), all);
    pthread_mutex_unlock(&p->mu);
    if (json_array_size(rows) > 0) {
        rt_error err;
        bool stored = write_rows(p, rows, &err) == RT_OK;
        if (!stored) {
            int64_t now = rt_mono_ms();
            if (!p->failure_logged_ms || now - p->failure_logged_ms >= 60000) {
                p->failure_logged_ms = now;
                rt_log(RT_LOG_WARN, NULL, "progress: %s (kept for the next try)", err.msg);
            }
        }
        pthread_mutex_lock(&p->mu);
        after_write(p, rows, stored);
        pthread_mutex_unlock(&p->mu);
    }
    json_decref(rows);
}

static void *progress_main(void *arg)
{
    rt_progress *p = arg;
    pthread_mutex_lock(&p->mu);
    while (!p->stopping) {
        struct timespec next;
        clock_gettime(CLOCK_MONOTONIC, &next);
        next.tv_nsec += TICK_MS * 1000000L;
        if (next.tv_nsec >= 1000000000L) {
            next.tv_sec++;
            next.tv_nsec -= 1000000000L;
        }
        while (!p->stopping && pthread_cond_timedwait(&p->cond, &p->mu, &next) != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&p->mu);
        flush(p, false);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    flush(p, true); /* the last word of steps that ended just now */
    rt_store_close(p->st);
    p->st = NULL;
    return NULL;
}

rt_status rt_progress_start(const rt_config *cfg, rt_progress **out, rt_error *err)
{
    *out = NULL;
    rt_progress *p = calloc(1, sizeof *p);
    if (!p)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    p->cfg = cfg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&p->mu, NULL);
    if (pthread_create(&p->thread, NULL, progress_main, p) != 0) {
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rt_error_set(err, RT_ERR_INTERNAL, "cannot start the progress thread");
    }
    *out = p;
    return RT_OK;
}

void rt_progress_stop(rt_progress *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
    while (p->entries) {
        entry *e = p->entries;
        p->entries = e->next;
        entry_free(e);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void rt_progress_count_records(const char *workflow, const json_t *output)
{
    json_t *n = json_is_object(output) ? json_object_get(output, "records_processed") : NULL;
    if (!workflow || !json_is_number(n))
        return;
    double v = json_number_value(n);
    if (v < 0 || v > 1e15)
        return;
    rt_metrics_counter_add("ratchet_records_processed_total", "workflow", workflow, (uint64_t)v);
}
