/* api_dashboard.c — the dashboard page and its figures (api_dashboard.h). */
#include "api_dashboard.h"

void rt_api_get_dashboard(rt_api_req *r)
{
    rt_api_reply_error(r, 501, "the dashboard is not built yet");
}

void rt_api_get_stats(rt_api_req *r)
{
    rt_api_reply_error(r, 501, "stats are not built yet");
}
