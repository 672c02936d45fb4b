/* api_dashboard.h — the dashboard: one page served at / by the binary (no external CDN),
 * and GET /api/v1/stats, the figures its charts draw (queue depth, throughput). */
#ifndef RT_API_DASHBOARD_H
#define RT_API_DASHBOARD_H

#include "api_routes.h"

void rt_api_get_dashboard(rt_api_req *r);
void rt_api_get_stats(rt_api_req *r);

#endif
