/* api_dashboard.c — the dashboard page and its figures (api_dashboard.h). */
#include "api_dashboard.h"

#include <stdlib.h>
#include <string.h>

#include "metrics.h"
#include "store_stats.h"
#include "store_wfstats.h"

#define STATS_MINUTES_DEFAULT 60

typedef rt_status (*reader_fn)(rt_api_req *r, rt_store *st, void *arg, json_t **out, rt_error *err);
static void read_and_reply(rt_api_req *r, reader_fn read, void *arg);

static rt_status read_stats(rt_api_req *r, rt_store *st, void *arg, json_t **out, rt_error *err)
{
    (void)r;
    return rt_store_stats(st, *(int *)arg, out, err);
}

void rt_api_get_dashboard(rt_api_req *r)
{
    /* Any query string is ignored: the page routes by its #fragment. The reply takes a
     * malloc'd copy (the answer frees it). */
    char *page = malloc(rt_web_dashboard_html_len + 1);
    if (!page) {
        rt_api_reply_error(r, 500, "out of memory");
        return;
    }
    memcpy(page, rt_web_dashboard_html, rt_web_dashboard_html_len + 1);
    rt_api_reply_text(r, 200, "text/html; charset=utf-8", page);
}

void rt_api_get_stats(rt_api_req *r)
{
    static const char *const q[] = {"minutes", NULL};
    if (!rt_api_query_only(r, q))
        return;
    int minutes = STATS_MINUTES_DEFAULT;
    const char *v = rt_api_query(r, "minutes");
    if (v) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > RT_STATS_MINUTES_MAX) {
            rt_api_reply_error(r, 400, "minutes=%.40s: expected an integer from 1 to %d", v, RT_STATS_MINUTES_MAX);
            return;
        }
        minutes = (int)n;
    }
    read_and_reply(r, read_stats, &minutes);
}

/* The statements read only: a connection gone stale while idle gets one more try. */
static void read_and_reply(rt_api_req *r, reader_fn read, void *arg)
{
    rt_error err;
    json_t *out = NULL;
    rt_status s = RT_ERR_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        rt_store *st = rt_api_store_get(r, &err);
        s = st ? read(r, st, arg, &out, &err) : err.code;
        if (s != RT_OK && st && !rt_store_healthy(st) && s != RT_ERR_UNAVAILABLE)
            s = err.code = RT_ERR_UNAVAILABLE;
        rt_api_store_put(r, st);
        if (s != RT_ERR_UNAVAILABLE)
            break;
    }
    if (s != RT_OK) {
        if (s == RT_ERR_UNAVAILABLE)
            rt_metrics_gauge_set("ratchet_db_up", 0);
        rt_api_reply_status(r, &err);
        return;
    }
    rt_api_reply_json(r, 200, out);
}

static rt_status read_workflow_stats(rt_api_req *r, rt_store *st, void *arg, json_t **out, rt_error *err)
{
    (void)arg;
    json_t *ids = json_array();
    for (size_t i = 0; r->set && i < r->set->n; i++)
        json_array_append_new(ids, json_string(r->set->items[i]->id));
    rt_status s = rt_store_workflow_stats(st, ids, out, err);
    json_decref(ids);
    return s;
}

void rt_api_get_workflow_stats(rt_api_req *r)
{
    static const char *const q[] = {NULL};
    if (!rt_api_query_only(r, q))
        return;
    read_and_reply(r, read_workflow_stats, NULL);
}

