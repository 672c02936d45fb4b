/* cron.h — cron expressions (5 fields, or 6 with seconds first; @hourly/@daily/@weekly/
 * @monthly/@yearly) and next-fire computation in an IANA time zone, DST-aware, thread-safe. */
#ifndef RT_CRON_H
#define RT_CRON_H

#include <stdint.h>

#include "status.h"

typedef struct rt_cron rt_cron;
typedef struct rt_tz rt_tz;

/* Parses expr. On error err->msg names the field and its position, e.g.
 * "cron \"0 25 * * *\": field 2 (hour) at column 3: 25 is out of range 0-23". */
rt_status rt_cron_parse(const char *expr, rt_cron **out, rt_error *err);
void rt_cron_free(rt_cron *c);

/* Loads a zone from the system tz database (/usr/share/zoneinfo, or $TZDIR). "UTC" always
 * works. The result is immutable and may be shared between threads. */
rt_status rt_tz_load(const char *name, rt_tz **out, rt_error *err);
void rt_tz_free(rt_tz *tz);

/* Offset from UTC in seconds at the instant t (unix seconds) in zone tz. */
int32_t rt_tz_offset(const rt_tz *tz, int64_t t);

/* The first fire time strictly after `after` (unix seconds), in zone tz. A local time
 * that does not exist (DST gap) does not fire that day; a local time that occurs twice
 * (DST overlap) fires once, at its first occurrence. Returns RT_ERR_NOT_FOUND when no
 * fire exists within the next 5 years (e.g. "0 0 30 2 *"). */
rt_status rt_cron_next(const rt_cron *c, const rt_tz *tz, int64_t after, int64_t *next);

#endif
