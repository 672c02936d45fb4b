/* api_dashboard.h — the dashboard: one page served at / by the binary (no external CDN),
 * and GET /api/v1/stats, the figures its charts draw (queue depth, throughput). */
#ifndef RT_API_DASHBOARD_H
#define RT_API_DASHBOARD_H

#include <stddef.h>

#include "api_routes.h"

/* web/dashboard.html, embedded at build time by cmake/embed_web.cmake (which also fills
 * in its Content-Security-Policy hashes); NUL-terminated. */
extern const char rt_web_dashboard_html[];
extern const size_t rt_web_dashboard_html_len;

/* GET / (public: the page holds no data; it asks for a token when the API wants one). */
void rt_api_get_dashboard(rt_api_req *r);
/* GET /api/v1/stats?minutes= (readers): the object of rt_store_stats (store_stats.h). */
void rt_api_get_stats(rt_api_req *r);
/* GET /api/v1/stats/workflows (readers): each workflow's health, rt_store_workflow_stats
 * (store_wfstats.h) for the loaded workflows and any with runs or schedules. */
void rt_api_get_workflow_stats(rt_api_req *r);

#endif
