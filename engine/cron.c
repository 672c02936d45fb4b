/* cron.c — placeholder until the parser lands. */
#include "cron.h"
#include <stddef.h>
rt_status rt_cron_parse(const char *expr, rt_cron **out, rt_error *err) { (void)expr; *out = NULL; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
void rt_cron_free(rt_cron *c) { (void)c; }
rt_status rt_tz_load(const char *name, rt_tz **out, rt_error *err) { (void)name; *out = NULL; return rt_error_set(err, RT_ERR_INTERNAL, "not implemented"); }
void rt_tz_free(rt_tz *tz) { (void)tz; }
int32_t rt_tz_offset(const rt_tz *tz, int64_t t) { (void)tz; (void)t; return 0; }
rt_status rt_cron_next(const rt_cron *c, const rt_tz *tz, int64_t after, int64_t *next) { (void)c; (void)tz; (void)after; (void)next; return RT_ERR_INTERNAL; }
