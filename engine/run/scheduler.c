/* scheduler.c — the schedules sync, the scheduler thread (claim due rows, create their
 * runs, move next_fire_at on, all in one transaction; sleep until the next due time or a
 * NOTIFY), catch-up planning, and pause/resume. The SQL lives in store_schedules.c. */
#include "scheduler.h"
#include "create.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "store_audit.h"
#include "log.h"
#include "store_schedules.h"
#include "util.h"

#define CLAIM_ROWS 256        /* schedule rows one claim locks at most */
#define RUNS_PER_TX 1000      /* runs one claim transaction creates at most */
#define MAX_SLEEP_US (INT64_C(300) * 1000000) /* re-read the next due time at least every 5 min */
#define RETRY_MS 100
#define BROKEN_RETRY_MS 60000 /* a row this process cannot evaluate is retried a minute later */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

/* ---------- a string-keyed cache of parsed expressions and loaded zones ---------- */

typedef struct cache_entry {
    char *key;
    void *val;         /* rt_cron*, rt_tz* or rt_workflow*; NULL when loading failed */
    rt_error *failure; /* why, when val is NULL (allocated only then) */
} cache_entry;

typedef struct strmap {
    cache_entry *e;
    size_t cap, n;
} strmap;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static cache_entry *strmap_slot(strmap *m, const char *key)
{
    size_t mask = m->cap - 1;
    for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask)
        if (!m->e[i].key || !strcmp(m->e[i].key, key))
            return &m->e[i];
}

/* The entry for key, inserted empty when absent (*fresh = true); NULL on allocation failure. */
static cache_entry *strmap_get(strmap *m, const char *key, bool *fresh)
{
    *fresh = false;
    if ((m->n + 1) * 10 > m->cap * 7) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        cache_entry *e = calloc(cap, sizeof *e);
        if (!e)
            return NULL;
        strmap old = *m;
        m->e = e;
        m->cap = cap;
        for (size_t i = 0; i < old.cap; i++)
            if (old.e[i].key)
                *strmap_slot(m, old.e[i].key) = old.e[i];
        free(old.e);
    }
    cache_entry *slot = strmap_slot(m, key);
    if (!slot->key) {
        slot->key = strdup(key);
        if (!slot->key)
            return NULL;
        m->n++;
        *fresh = true;
    }
    return slot;
}

static const void *strmap_find(const strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    const cache_entry *e = strmap_slot((strmap *)m, key);
    return e->key ? e->val : NULL;
}

static void strmap_free(strmap *m, void (*free_val)(void *))
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->e[i].key) {
            free(m->e[i].key);
            free(m->e[i].failure);
            if (free_val && m->e[i].val)
                free_val(m->e[i].val);
        }
    }
    free(m->e);
    memset(m, 0, sizeof *m);
}

static void free_cron(void *p)
{
    rt_cron_free(p);
}

static void free_tz(void *p)
{
    rt_tz_free(p);
}

/* Each expression parsed and each zone loaded once (rt_tz_load reads a file). Used by
 * one thread at a time. */
typedef struct sched_cache {
    strmap crons, zones;
} sched_cache;

static void cache_free(sched_cache *c)
{
    strmap_free(&c->crons, free_cron);
    strmap_free(&c->zones, free_tz);
}

static rt_status cached_failure(const cache_entry *e, rt_error *err)
{
    if (!e->failure)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (err)
        *err = *e->failure;
    return e->failure->code;
}

static rt_status cache_cron(sched_cache *c, const char *text, const rt_cron **out, rt_error *err)
{
    bool fresh;
    cache_entry *e = strmap_get(&c->crons, text, &fresh);
    if (!e)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (fresh) {
        rt_cron *cron = NULL;
        rt_error why;
        if (rt_cron_parse(text, &cron, &why) == RT_OK)
            e->val = cron;
        else if ((e->failure = malloc(sizeof why)) != NULL)
            *e->failure = why;
    }
    if (!e->val)
        return cached_failure(e, err);
    *out = e->val;
    return RT_OK;
}

static rt_status cache_tz(sched_cache *c, const char *name, const rt_tz **out, rt_error *err)
{
    bool fresh;
    cache_entry *e = strmap_get(&c->zones, name, &fresh);
    if (!e)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    if (fresh) {
        rt_tz *tz = NULL;
        rt_error why;
        if (rt_tz_load(name, &tz, &why) == RT_OK)
            e->val = tz;
        else if ((e->failure = malloc(sizeof why)) != NULL)
            *e->failure = why;
    }
    if (!e->val)
        return cached_failure(e, err);
    *out = e->val;
    return RT_OK;
}

/* The first tick strictly after now_ms, in ms (0 = never). */
static rt_status next_after(sched_cache *c, const char *cron, const char *zone, int64_t now_ms, int64_t *next_ms,
                            rt_error *err)
{
    const rt_cron *cr = NULL;
    const rt_tz *tz = NULL;
    *next_ms = 0;
    rt_status s = cache_cron(c, cron, &cr, err);
    if (s == RT_OK)
        s = cache_tz(c, zone, &tz, err);
    if (s != RT_OK)
        return s;
    int64_t next;
    s = rt_cron_next(cr, tz, floor_div(now_ms, 1000), &next);
    if (s == RT_ERR_NOT_FOUND)
        return RT_OK;
    if (s != RT_OK)
        return rt_error_set(err, s, "cron \"%s\": no next fire time", cron);
    *next_ms = next * 1000;
    return RT_OK;
}

/* ---------- pure pieces ---------- */

void rt_schedule_local_time(const rt_tz *tz, int64_t t, char time_buf[32], char date_buf[16])
{
    int32_t off = rt_tz_offset(tz, t);
    time_t local = (time_t)(t + off);
    struct tm tm;
    gmtime_r(&local, &tm);
    /* RFC 3339 offsets have minutes only; zones with second offsets are pre-1900 history. */
    int32_t a = off < 0 ? -off : off;
    snprintf(time_buf, 32, "%04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
             tm.tm_hour, tm.tm_min, tm.tm_sec, off < 0 ? '-' : '+', (int)(a / 3600), (int)(a / 60 % 60));
    snprintf(date_buf, 16, "%04d-%02d-%02d", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday);
}

rt_status rt_schedule_plan(const rt_cron *c, const rt_tz *tz, rt_catch_up policy, int64_t first, int64_t now_ms,
                           rt_tick_plan *p, rt_error *err)
{
    enum { K = RT_SCHEDULE_CATCH_UP_MAX };
    memset(p, 0, sizeof *p);
    int64_t now_s = floor_div(now_ms, 1000);
    if (first > now_s) {
        p->has_next = true;
        p->next = first;
        return RT_OK;
    }
    /* The due ticks, the last K of them kept in a ring. */
    int64_t ring[K];
    int64_t pushed = 0, count = 0, t = first;
    bool more = true;
    rt_status s = RT_OK;
    while (t <= now_s && count < RT_SCHEDULE_COUNT_MAX) {
        ring[pushed++ % K] = t;
        count++;
        s = rt_cron_next(c, tz, t, &t);
        if (s == RT_ERR_NOT_FOUND) {
            more = false;
            break;
        }
        if (s != RT_OK)
            return rt_error_set(err, s, "cron \"%s\": cannot compute the tick after %lld", rt_cron_text(c),
                                (long long)t);
    }
    if (more && t <= now_s) {
        /* Too many to walk (a per-second schedule down for days): find the last K with a
         * window that grows back from now. count stays a lower bound. */
        for (int64_t w = 64;; w *= 8) {
            int64_t start = now_s - w;
            if (start < first - 1 || w > (INT64_C(1) << 40))
                start = first - 1;
            int64_t n = 0, tt = start;
            more = true;
            for (;;) {
                s = rt_cron_next(c, tz, tt, &tt);
                if (s == RT_ERR_NOT_FOUND) {
                    more = false;
                    break;
                }
                if (s != RT_OK)
                    return rt_error_set(err, s, "cron \"%s\": cannot compute the tick after %lld", rt_cron_text(c),
                                        (long long)tt);
                if (tt > now_s)
                    break;
                ring[n++ % K] = tt;
            }
            if (n >= K || start == first - 1) {
                pushed = n;
                t = tt;
                break;
            }
        }
    }
    p->due = count;
    p->has_next = more;
    p->next = more ? t : 0;

    size_t m = pushed < K ? (size_t)pushed : K;
    size_t oldest = pushed <= K ? 0 : (size_t)(pushed % K);
    int64_t ticks[K];
    for (size_t i = 0; i < m; i++)
        ticks[i] = ring[(oldest + i) % K];
    int64_t latest = ticks[m - 1];
    int64_t grace = more ? (p->next - latest) * 1000 / 2 : RT_SCHEDULE_GRACE_MAX_MS;
    if (grace < RT_SCHEDULE_GRACE_MIN_MS)
        grace = RT_SCHEDULE_GRACE_MIN_MS;
    if (grace > RT_SCHEDULE_GRACE_MAX_MS)
        grace = RT_SCHEDULE_GRACE_MAX_MS;
    size_t on_time = m; /* index of the first on-time tick in ticks[] */
    while (on_time > 0 && now_ms - ticks[on_time - 1] * 1000 <= grace)
        on_time--;
    p->late = p->due - (int64_t)(m - on_time);

    switch (policy) {
    case RT_CATCH_UP_ALL:
        for (size_t i = 0; i < m; i++) {
            p->fire[p->n_fire] = ticks[i];
            p->fire_missed[p->n_fire++] = i < on_time ? 1 : 0;
        }
        p->dropped = p->due - (int64_t)m;
        break;
    case RT_CATCH_UP_LATEST:
        if (p->late > 0 && on_time > 0) {
            p->fire[p->n_fire] = ticks[on_time - 1];
            p->fire_missed[p->n_fire++] = p->late;
        } else {
            p->dropped = p->late; /* only when all K kept ticks are on time: not in practice */
        }
        for (size_t i = on_time; i < m; i++) {
            p->fire[p->n_fire] = ticks[i];
            p->fire_missed[p->n_fire++] = 0;
        }
        break;
    case RT_CATCH_UP_NONE:
        for (size_t i = on_time; i < m; i++) {
            p->fire[p->n_fire] = ticks[i];
            p->fire_missed[p->n_fire++] = 0;
        }
        p->dropped = p->late;
        break;
    }
    return RT_OK;
}

/* ---------- sync ---------- */

typedef struct want {
    const rt_workflow *wf;
    int index;
    const rt_trigger *tr;
} want;

static int key_cmp(const char *wa, int ia, const char *wb, int ib)
{
    int c = strcmp(wa, wb);
    return c ? c : (ia > ib) - (ia < ib);
}

static int want_cmp(const void *a, const void *b)
{
    const want *x = a, *y = b;
    return key_cmp(x->wf->id, x->index, y->wf->id, y->index);
}

static json_t *upsert_json(const want *w, int64_t next_ms)
{
    return json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:I}", "workflow_id", w->wf->id, "trigger_index", w->index,
                     "cron", w->tr->cron, "timezone", w->tr->timezone ? w->tr->timezone : "UTC", "catch_up",
                     rt_catch_up_name(w->tr->catch_up), "enabled", w->wf->enabled, "next_fire_at",
                     (json_int_t)next_ms);
}

/* The next fire of a (re)started trigger: from now, or none when disabled. */
static int64_t fresh_next(sched_cache *cache, const want *w, int64_t now_ms)
{
    if (!w->wf->enabled)
        return 0;
    int64_t next = 0;
    rt_error e;
    const char *zone = w->tr->timezone ? w->tr->timezone : "UTC";
    if (next_after(cache, w->tr->cron, zone, now_ms, &next, &e) != RT_OK) {
        rt_log_ctx ctx = {.workflow = w->wf->id};
        rt_log(RT_LOG_ERROR, &ctx, "schedule %s#%d: %s; it will not fire", w->wf->id, w->index, e.msg);
    }
    return next;
}

static rt_status sync_with(rt_store *st, const rt_workflow_set *set, sched_cache *cache, rt_schedule_sync_result *res,
                           rt_error *err)
{
    memset(res, 0, sizeof *res);
    size_t n_want = 0;
    for (size_t i = 0; i < set->n; i++)
        for (size_t k = 0; k < set->items[i]->n_triggers; k++)
            n_want += set->items[i]->triggers[k].kind == RT_TRIGGER_CRON;
    want *wants = calloc(n_want ? n_want : 1, sizeof *wants);
    if (!wants)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    size_t w = 0;
    for (size_t i = 0; i < set->n; i++) {
        const rt_workflow *wf = set->items[i];
        for (size_t k = 0; k < wf->n_triggers; k++)
            if (wf->triggers[k].kind == RT_TRIGGER_CRON)
                wants[w++] = (want){.wf = wf, .index = (int)k, .tr = &wf->triggers[k]};
    }
    qsort(wants, n_want, sizeof *wants, want_cmp);
    res->total = n_want;

    rt_schedule_row *rows = NULL;
    size_t n_rows = 0;
    int64_t now = 0;
    json_t *upserts = json_array(), *deletes = json_array();
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_schedules_lock_all(st, &rows, &n_rows, &now, err);
    size_t i = 0, j = 0;
    while (s == RT_OK && (i < n_want || j < n_rows)) {
        int c = i == n_want   ? 1
                : j == n_rows ? -1
                              : key_cmp(wants[i].wf->id, wants[i].index, rows[j].workflow_id, rows[j].trigger_index);
        if (c < 0) { /* a new trigger */
            json_array_append_new(upserts, upsert_json(&wants[i], fresh_next(cache, &wants[i], now)));
            res->inserted++;
            i++;
        } else if (c > 0) { /* a trigger that is gone */
            const rt_schedule_row *r = &rows[j];
            if (set->n_errors > 0 && !rt_workflow_set_find(set, r->workflow_id)) {
                res->kept++;
            } else {
                json_array_append_new(deletes,
                                      json_pack("{s:s, s:i}", "workflow_id", r->workflow_id, "trigger_index",
                                                r->trigger_index));
                res->deleted++;
            }
            j++;
        } else {
            const want *x = &wants[i];
            const rt_schedule_row *r = &rows[j];
            const char *zone = x->tr->timezone ? x->tr->timezone : "UTC";
            bool timing = strcmp(x->tr->cron, r->cron) || strcmp(zone, r->timezone);
            bool changed = timing || x->tr->catch_up != r->catch_up || x->wf->enabled != r->enabled;
            if (changed) {
                int64_t next = r->next_fire_ms;
                if (!x->wf->enabled)
                    next = 0;
                else if (timing || !r->enabled || next == 0)
                    next = fresh_next(cache, x, now);
                json_array_append_new(upserts, upsert_json(x, next));
                res->updated++;
            }
            i++;
            j++;
        }
    }
    if (s == RT_OK)
        s = rt_store_schedules_write(st, upserts, deletes, err);
    s = rt_store_end(st, s, err);
    json_decref(upserts);
    json_decref(deletes);
    rt_schedule_rows_free(rows, n_rows);
    free(wants);
    return s;
}

rt_status rt_schedules_sync(rt_store *st, const rt_workflow_set *set, rt_schedule_sync_result *res, rt_error *err)
{
    sched_cache cache = {0};
    rt_status s = sync_with(st, set, &cache, res, err);
    cache_free(&cache);
    return s;
}

/* ---------- presentation ---------- */

const char *rt_schedule_state(const rt_schedule_row *r)
{
    return !r->enabled ? "disabled" : r->paused ? "paused" : "active";
}

static json_t *time_or_null(int64_t ms)
{
    if (ms == 0)
        return json_null();
    char buf[40];
    rt_time_format(ms, buf, sizeof buf);
    return json_string(buf);
}

json_t *rt_schedule_row_json(const rt_schedule_row *r)
{
    bool active = r->enabled && !r->paused;
    json_t *o = json_object();
    json_object_set_new(o, "workflow", json_string(r->workflow_id));
    json_object_set_new(o, "trigger", json_integer(r->trigger_index));
    json_object_set_new(o, "cron", json_string(r->cron));
    json_object_set_new(o, "timezone", json_string(r->timezone));
    json_object_set_new(o, "catch_up", json_string(rt_catch_up_name(r->catch_up)));
    json_object_set_new(o, "state", json_string(rt_schedule_state(r)));
    json_object_set_new(o, "last_fire_at", time_or_null(r->last_fire_ms));
    json_object_set_new(o, "next_fire_at", time_or_null(active ? r->next_fire_ms : 0));
    return o;
}

/* ---------- pause / resume ---------- */

rt_status rt_schedules_pause(rt_store *st, const char *workflow_id, const char *actor, bool *changed, rt_error *err)
{
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_schedules_pause(st, workflow_id, actor, changed, err);
    if (s == RT_OK) /* AUDIT HOOK (DESIGN §6), in this transaction (audit.h) */
        s = rt_store_audit_append(st, actor, "schedule.pause", workflow_id, NULL, err);
    s = rt_store_end(st, s, err);
    return s;
}

rt_status rt_schedules_resume(rt_store *st, const char *workflow_id, const char *actor, bool *changed,
                              rt_error *err)
{
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    int64_t now = 0;
    json_t *updates = json_array();
    sched_cache cache = {0};
    rt_status s = rt_store_begin(st, err);
    if (s == RT_OK)
        s = rt_store_schedules_unpause(st, workflow_id, changed, err);
    if (s == RT_OK && *changed)
        s = rt_store_schedules_lock_workflow(st, workflow_id, &rows, &n, &now, err);
    for (size_t i = 0; s == RT_OK && i < n; i++) {
        const rt_schedule_row *r = &rows[i];
        if (!r->enabled || r->next_fire_ms == 0 || r->next_fire_ms > now)
            continue;
        /* The ticks of the pause are not caught up: start again after now. */
        int64_t next = 0;
        rt_error e;
        if (next_after(&cache, r->cron, r->timezone, now, &next, &e) != RT_OK) {
            rt_log(RT_LOG_WARN, NULL, "schedule %s#%d: %s", r->workflow_id, r->trigger_index, e.msg);
            continue;
        }
        json_array_append_new(updates, json_pack("{s:s, s:i, s:I, s:I}", "workflow_id", r->workflow_id,
                                                 "trigger_index", r->trigger_index, "next_fire_at",
                                                 (json_int_t)next, "last_fire_at", (json_int_t)0));
    }
    if (s == RT_OK)
        s = rt_store_schedules_advance(st, updates, err);
    if (s == RT_OK) /* AUDIT HOOK (DESIGN §6), in this transaction (audit.h) */
        s = rt_store_audit_append(st, actor, "schedule.resume", workflow_id, NULL, err);
    s = rt_store_end(st, s, err);
    json_decref(updates);
    rt_schedule_rows_free(rows, n);
    cache_free(&cache);
    return s;
}

/* ---------- the scheduler thread ---------- */

struct rt_scheduler {
    const rt_config *cfg;
    const rt_workflow_set *set;
    pthread_t thread;
    bool started;
    atomic_bool stopping;
    int wake_fd[2]; /* a byte on wake_fd[1] interrupts a sleep (stop) */
    rt_store *st;
    sched_cache cache;
    strmap fireable;       /* workflow id -> rt_workflow*: enabled, with a cron trigger */
    const char **fire_ids; /* the same ids, for the database */
    size_t n_fire_ids;

    pthread_mutex_t stats_mu;
    rt_scheduler_stats stats;
};

rt_status rt_scheduler_new(const rt_config *cfg, const rt_workflow_set *set, rt_scheduler **out, rt_error *err)
{
    rt_scheduler *s = calloc(1, sizeof *s);
    if (!s)
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    s->cfg = cfg;
    s->set = set;
    s->wake_fd[0] = s->wake_fd[1] = -1;
    atomic_init(&s->stopping, false);
    pthread_mutex_init(&s->stats_mu, NULL);
    if (pipe2(s->wake_fd, O_CLOEXEC | O_NONBLOCK) != 0) {
        rt_status st = rt_error_set(err, RT_ERR_IO, "scheduler: pipe: %s", strerror(errno));
        rt_scheduler_free(s);
        return st;
    }
    s->fire_ids = calloc(set->n ? set->n : 1, sizeof *s->fire_ids);
    if (!s->fire_ids) {
        rt_scheduler_free(s);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < set->n; i++) {
        rt_workflow *wf = set->items[i];
        bool cron = false;
        for (size_t k = 0; k < wf->n_triggers && !cron; k++)
            cron = wf->triggers[k].kind == RT_TRIGGER_CRON;
        if (!cron || !wf->enabled)
            continue;
        bool fresh;
        cache_entry *e = strmap_get(&s->fireable, wf->id, &fresh);
        if (!e) {
            rt_scheduler_free(s);
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        }
        e->val = wf;
        s->fire_ids[s->n_fire_ids++] = wf->id;
    }
    *out = s;
    return RT_OK;
}

void rt_scheduler_free(rt_scheduler *s)
{
    if (!s)
        return;
    if (s->started)
        rt_scheduler_stop(s);
    rt_store_close(s->st);
    cache_free(&s->cache);
    strmap_free(&s->fireable, NULL);
    free(s->fire_ids);
    for (int i = 0; i < 2; i++)
        if (s->wake_fd[i] >= 0)
            close(s->wake_fd[i]);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

void rt_scheduler_stats_get(rt_scheduler *s, rt_scheduler_stats *out)
{
    pthread_mutex_lock(&s->stats_mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->stats_mu);
}

static void note_cpu(rt_scheduler *s)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return;
    pthread_mutex_lock(&s->stats_mu);
    s->stats.cpu_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    s->stats.wakeups++;
    pthread_mutex_unlock(&s->stats_mu);
}

static bool stopping(rt_scheduler *s)
{
    return atomic_load(&s->stopping);
}

/* Sleeps up to wait_us, or until a NOTIFY arrives on the connection (when listening) or
 * the scheduler is stopped. Returns true when woken by a NOTIFY. */
static bool sleep_or_wake(rt_scheduler *s, int64_t wait_us, bool listen)
{
    PGconn *conn = listen && s->st ? rt_store_pg(s->st) : NULL;
    if (conn) {
        PQconsumeInput(conn);
        PGnotify *nt;
        bool any = false;
        while ((nt = PQnotifies(conn)) != NULL) {
            any = true;
            PQfreemem(nt);
        }
        if (any)
            return true;
    }
    struct pollfd fds[2] = {{.fd = s->wake_fd[0], .events = POLLIN}, {.fd = conn ? PQsocket(conn) : -1, .events = POLLIN}};
    if (wait_us < 0)
        wait_us = 0;
    struct timespec ts = {.tv_sec = wait_us / 1000000, .tv_nsec = (wait_us % 1000000) * 1000};
    int rc = ppoll(fds, conn ? 2 : 1, &ts, NULL);
    bool notified = false;
    if (rc > 0 && conn && (fds[1].revents & (POLLIN | POLLERR | POLLHUP))) {
        PQconsumeInput(conn);
        PGnotify *nt;
        while ((nt = PQnotifies(conn)) != NULL) {
            notified = true;
            PQfreemem(nt);
        }
    }
    return notified;
}

/* Opens or re-opens the connection, backing off while the database is away. */
static bool ensure_store(rt_scheduler *s)
{
    int64_t delay = 100;
    while (!stopping(s)) {
        rt_error err;
        rt_status st = s->st ? rt_store_reconnect(s->st, &err) : rt_store_open(s->cfg->database_url, &s->st, &err);
        if (st == RT_OK)
            return true;
        rt_log(RT_LOG_WARN, NULL, "scheduler: %s; retrying in %lld ms", err.msg, (long long)delay);
        sleep_or_wake(s, delay * 1000, false);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    return false;
}

/* One run request being built for a tick. */
typedef struct tick_run {
    const rt_workflow *wf;
    json_t *trigger, *event;
    char dedupe[64];
} tick_run;

/* now_ms: when the scheduler decided to fire (its late_ms is measured from the tick). */
static void tick_run_make(tick_run *tr, const rt_workflow *wf, const rt_schedule_row *r, const rt_tz *tz,
                          int64_t tick, int64_t missed, int64_t now_ms)
{
    char time_buf[32], date_buf[16], event_id[37];
    rt_schedule_local_time(tz, tick, time_buf, date_buf);
    int64_t late_ms = now_ms - tick * 1000;
    json_t *sched = json_pack("{s:s, s:s, s:I}", "time", time_buf, "date", date_buf, "late_ms",
                              (json_int_t)(late_ms > 0 ? late_ms : 0));
    if (missed > 0)
        json_object_set_new(sched, "missed", json_integer(missed));
    tr->wf = wf;
    tr->trigger = json_pack("{s:s, s:s, s:s, s:i, s:o}", "type", "cron", "cron", r->cron, "timezone", r->timezone,
                            "index", r->trigger_index, "schedule", sched);
    rt_uuid7(event_id);
    tr->event = json_pack("{s:s, s:s, s:I, s:{}, s:{s:s, s:s}, s:s}", "name", "ratchet.cron", "id", event_id, "ts",
                          (json_int_t)(tick * 1000), "data", "actor", "type", "system", "id", "scheduler", "v", "1");
    snprintf(tr->dedupe, sizeof tr->dedupe, "cron:%d:%lld", r->trigger_index, (long long)(tick * 1000));
}

static json_t *advance_json(const rt_schedule_row *r, int64_t next_ms, int64_t last_ms)
{
    return json_pack("{s:s, s:i, s:I, s:I}", "workflow_id", r->workflow_id, "trigger_index", r->trigger_index,
                     "next_fire_at", (json_int_t)next_ms, "last_fire_at", (json_int_t)last_ms);
}

/* Plans one claimed row into runs[] (grown as needed) and updates[]. */
static rt_status plan_row(rt_scheduler *s, const rt_schedule_row *r, int64_t now, tick_run **runs, size_t *n_runs,
                          size_t *cap, json_t *updates, uint64_t *ticks, rt_error *err)
{
    rt_log_ctx ctx = {.workflow = r->workflow_id};
    const rt_workflow *wf = strmap_find(&s->fireable, r->workflow_id);
    const rt_cron *cron = NULL;
    const rt_tz *tz = NULL;
    rt_tick_plan plan;
    rt_error e;
    rt_status ps = wf ? RT_OK : rt_error_set(&e, RT_ERR_NOT_FOUND, "workflow not loaded in this process");
    if (ps == RT_OK)
        ps = cache_cron(&s->cache, r->cron, &cron, &e);
    if (ps == RT_OK)
        ps = cache_tz(&s->cache, r->timezone, &tz, &e);
    if (ps == RT_OK)
        ps = rt_schedule_plan(cron, tz, r->catch_up, floor_div(r->next_fire_ms, 1000), now, &plan, &e);
    if (ps != RT_OK) {
        rt_log(RT_LOG_ERROR, &ctx, "schedule %s#%d (\"%s\" in %s): %s; retrying in %d s", r->workflow_id,
               r->trigger_index, r->cron, r->timezone, e.msg, BROKEN_RETRY_MS / 1000);
        json_array_append_new(updates, advance_json(r, now + BROKEN_RETRY_MS, 0));
        return RT_OK;
    }
    if (*n_runs + plan.n_fire > *cap) {
        size_t ncap = (*n_runs + plan.n_fire) * 2;
        tick_run *grown = realloc(*runs, ncap * sizeof *grown);
        if (!grown)
            return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        memset(grown + *cap, 0, (ncap - *cap) * sizeof *grown);
        *runs = grown;
        *cap = ncap;
    }
    for (size_t k = 0; k < plan.n_fire; k++)
        tick_run_make(&(*runs)[(*n_runs)++], wf, r, tz, plan.fire[k], plan.fire_missed[k], now);
    *ticks += (uint64_t)plan.due;
    if (plan.late > 0)
        rt_log(RT_LOG_INFO, &ctx, "schedule %s#%d: %lld late tick(s) (catch_up %s): %zu run(s), %lld without one",
               r->workflow_id, r->trigger_index, (long long)plan.late, rt_catch_up_name(r->catch_up), plan.n_fire,
               (long long)plan.dropped);
    if (!plan.has_next)
        rt_log(RT_LOG_WARN, &ctx, "schedule %s#%d (\"%s\"): no further fire time", r->workflow_id, r->trigger_index,
               r->cron);
    json_array_append_new(updates, advance_json(r, plan.has_next ? plan.next * 1000 : 0,
                                                plan.n_fire ? plan.fire[plan.n_fire - 1] * 1000 : 0));
    return RT_OK;
}

/* One claim transaction: locks due rows, creates their runs and moves the rows on, then
 * commits. *full when more may be due right now. */
static rt_status fire_due(rt_scheduler *s, int limit, size_t *n_claimed, bool *full, rt_error *err)
{
    rt_store *st = s->st;
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    int64_t now = 0;
    *n_claimed = 0;
    *full = false;
    rt_status status = rt_store_begin(st, err);
    if (status == RT_OK)
        status = rt_store_schedules_claim(st, limit, &rows, &n, &now, err);
    if (status != RT_OK || n == 0) {
        rt_store_rollback(st);
        return status;
    }
    *full = n == (size_t)limit;
    size_t cap = n + 16, n_runs = 0;
    tick_run *runs = calloc(cap, sizeof *runs);
    rt_run_request *reqs = NULL;
    json_t *updates = json_array();
    uint64_t ticks = 0;
    if (!runs)
        status = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    for (size_t i = 0; status == RT_OK && i < n; i++) {
        if (n_runs >= RUNS_PER_TX) { /* the rest stay due (unchanged) for the next claim */
            *full = true;
            break;
        }
        status = plan_row(s, &rows[i], now, &runs, &n_runs, &cap, updates, &ticks, err);
    }
    if (status == RT_OK && n_runs > 0) {
        reqs = calloc(n_runs, sizeof *reqs);
        if (!reqs)
            status = rt_error_set(err, RT_ERR_NOMEM, "out of memory");
        for (size_t k = 0; status == RT_OK && k < n_runs; k++)
            reqs[k] = (rt_run_request){.wf = runs[k].wf, .trigger = runs[k].trigger, .event = runs[k].event,
                                       .dedupe_key = runs[k].dedupe};
        if (status == RT_OK)
            status = rt_run_create_tx(st, reqs, n_runs, err);
    }
    if (status == RT_OK)
        status = rt_store_schedules_advance(st, updates, err);
    if (status == RT_OK)
        status = rt_store_commit(st, err);
    if (status != RT_OK) {
        rt_store_rollback(st);
    } else {
        size_t created = 0;
        for (size_t k = 0; k < n_runs; k++) {
            if (!reqs[k].id[0])
                continue; /* the tick's run existed already */
            created++;
            if (rt_log_min_level <= RT_LOG_DEBUG) {
                rt_log_ctx ctx = {.workflow = reqs[k].wf->id, .run_id = reqs[k].id};
                rt_log(RT_LOG_DEBUG, &ctx, "cron tick %s: run created",
                       json_string_value(json_object_get(json_object_get(runs[k].trigger, "schedule"), "time")));
            }
        }
        pthread_mutex_lock(&s->stats_mu);
        s->stats.claims++;
        s->stats.ticks += ticks;
        s->stats.runs += created;
        pthread_mutex_unlock(&s->stats_mu);
        *n_claimed = n;
    }
    for (size_t k = 0; k < n_runs; k++) {
        json_decref(runs[k].trigger);
        json_decref(runs[k].event);
    }
    free(runs);
    free(reqs);
    json_decref(updates);
    rt_schedule_rows_free(rows, n);
    return status;
}

/* The earliest due row failed on its own (see the loop): move it a minute on, so one bad
 * row cannot hold every schedule back. */
static void postpone_first_due(rt_scheduler *s, const rt_error *why)
{
    rt_schedule_row *rows = NULL;
    size_t n = 0;
    int64_t now = 0;
    rt_error err;
    rt_status st = rt_store_begin(s->st, &err);
    if (st == RT_OK)
        st = rt_store_schedules_claim(s->st, 1, &rows, &n, &now, &err);
    if (st == RT_OK && n == 1) {
        json_t *updates = json_array();
        json_array_append_new(updates, advance_json(&rows[0], now + BROKEN_RETRY_MS, 0));
        st = rt_store_schedules_advance(s->st, updates, &err);
        json_decref(updates);
        rt_log_ctx ctx = {.workflow = rows[0].workflow_id};
        if (st == RT_OK)
            rt_log(RT_LOG_ERROR, &ctx, "schedule %s#%d: its tick cannot be fired (%s); retrying in %d s",
                   rows[0].workflow_id, rows[0].trigger_index, why->msg, BROKEN_RETRY_MS / 1000);
    }
    if (st == RT_OK)
        st = rt_store_commit(s->st, &err);
    if (st != RT_OK) {
        rt_store_rollback(s->st);
        rt_log(RT_LOG_WARN, NULL, "scheduler: %s", err.msg);
    }
    rt_schedule_rows_free(rows, n);
}

static rt_status setup_connection(rt_scheduler *s, rt_error *err)
{
    rt_status st = rt_store_listen(s->st, RT_SCHEDULES_CHANNEL, err);
    if (st == RT_OK)
        st = rt_store_schedules_set_loaded(s->st, s->fire_ids, s->n_fire_ids, err);
    return st;
}

static void *scheduler_main(void *arg)
{
    rt_scheduler *s = arg;
    int64_t delay = 200;
    while (!stopping(s)) {
        if ((!s->st || !rt_store_healthy(s->st)) && !ensure_store(s))
            break;
        rt_schedule_sync_result r;
        rt_error err;
        int64_t t0 = rt_mono_ms();
        if (sync_with(s->st, s->set, &s->cache, &r, &err) == RT_OK) {
            rt_log(RT_LOG_INFO, NULL,
                   "schedules synced in %lld ms: %zu cron trigger(s) loaded; %zu added, %zu changed, %zu removed%s",
                   (long long)(rt_mono_ms() - t0), r.total, r.inserted, r.updated, r.deleted,
                   r.kept ? " (rows of workflows that failed to load kept)" : "");
            pthread_mutex_lock(&s->stats_mu);
            s->stats.synced = true;
            pthread_mutex_unlock(&s->stats_mu);
            break;
        }
        rt_log(RT_LOG_WARN, NULL, "schedules sync: %s; retrying in %lld ms", err.msg, (long long)delay);
        sleep_or_wake(s, delay * 1000, false);
        delay = delay * 2 > 5000 ? 5000 : delay * 2;
    }
    if (stopping(s)) {
        /* stopped before the sync went through */
    } else if (!s->cfg->scheduler_enabled) {
        rt_log(RT_LOG_INFO, NULL, "scheduler off in this process (RATCHET_SCHEDULER_ENABLED=false): "
                                  "other processes fire the cron ticks");
    } else if (s->n_fire_ids == 0) {
        rt_log(RT_LOG_INFO, NULL, "scheduler: no enabled workflow with a cron trigger loaded");
    } else {
        rt_log(RT_LOG_INFO, NULL, "scheduler started for %zu workflow(s) with cron triggers", s->n_fire_ids);
        bool ready = false;
        bool claim = true; /* false after a NOTIFY: read the next due time before claiming */
        int limit = CLAIM_ROWS; /* 1 while isolating a row that makes the claim fail */
        int64_t backoff_us = 0;
        while (!stopping(s)) {
            note_cpu(s);
            rt_error err;
            if (!s->st || !rt_store_healthy(s->st)) {
                if (!ensure_store(s))
                    break;
                ready = false;
            }
            if (!ready) {
                if (setup_connection(s, &err) != RT_OK) {
                    rt_log(RT_LOG_WARN, NULL, "scheduler: %s", err.msg);
                    sleep_or_wake(s, RETRY_MS * 1000, false);
                    continue;
                }
                ready = true;
            }
            size_t claimed = 0;
            bool full = false, tried = claim;
            if (claim && fire_due(s, limit, &claimed, &full, &err) != RT_OK) {
                rt_log(RT_LOG_WARN, NULL, "scheduler: %s", err.msg);
                /* A data error (not the connection, not a lock conflict) may be one row's:
                 * retry one row at a time, and move that row on if it fails alone. */
                bool data_error = rt_store_healthy(s->st) && (err.code == RT_ERR_INVALID || err.code == RT_ERR_INTERNAL);
                if (data_error && limit == 1) {
                    postpone_first_due(s, &err);
                    limit = CLAIM_ROWS;
                } else if (data_error) {
                    limit = 1;
                }
                sleep_or_wake(s, RETRY_MS * 1000, false);
                continue;
            }
            if (claim && claimed > 0)
                limit = CLAIM_ROWS;
            claim = true;
            if (full)
                continue;
            int64_t next_us = 0, now_us = 0;
            if (rt_store_schedules_next(s->st, &next_us, &now_us, &err) != RT_OK) {
                rt_log(RT_LOG_WARN, NULL, "scheduler: %s", err.msg);
                sleep_or_wake(s, RETRY_MS * 1000, false);
                continue;
            }
            int64_t wait_us;
            if (next_us == 0) {
                wait_us = MAX_SLEEP_US;
            } else if (next_us <= now_us) {
                if (claimed > 0 || !tried)
                    continue; /* due now (or more became due while we fired): claim */
                /* Due, but another scheduler holds it: its commit NOTIFYs; back off meanwhile. */
                backoff_us = backoff_us ? (backoff_us * 2 > 100000 ? 100000 : backoff_us * 2) : 1000;
                wait_us = backoff_us;
            } else {
                backoff_us = 0;
                wait_us = next_us - now_us;
                if (wait_us > MAX_SLEEP_US)
                    wait_us = MAX_SLEEP_US;
            }
            /* A timer expiry means "due": claim at once. A NOTIFY (another scheduler fired,
             * a sync, a pause) rarely does: look at the next due time first. */
            claim = !sleep_or_wake(s, wait_us, true);
        }
    }
    note_cpu(s);
    rt_store_close(s->st);
    s->st = NULL;
    return NULL;
}

rt_status rt_scheduler_start(rt_scheduler *s, rt_error *err)
{
    if (pthread_create(&s->thread, NULL, scheduler_main, s) != 0)
        return rt_error_set(err, RT_ERR_INTERNAL, "cannot start the scheduler thread");
    s->started = true;
    return RT_OK;
}

void rt_scheduler_stop(rt_scheduler *s)
{
    if (!s || !s->started)
        return;
    atomic_store(&s->stopping, true);
    ssize_t w = write(s->wake_fd[1], "x", 1);
    (void)w;
    pthread_join(s->thread, NULL);
    s->started = false;
}
