/* cron.h — cron expressions (5 fields, or 6 with seconds first; @hourly/@daily/@weekly/
 * @monthly/@yearly) and next-fire computation in an IANA time zone, DST-aware, thread-safe.
 *
 * Syntax (Vixie cron, plus seconds):
 *   [second] minute hour day-of-month month day-of-week
 *   second 0-59, minute 0-59, hour 0-23, day-of-month 1-31, month 1-12 or JAN-DEC,
 *   day-of-week 0-7 or SUN-SAT (0 and 7 are both Sunday). Names are the three-letter
 *   English abbreviations, case-insensitive. A 5-field expression fires at second 0.
 *   Each field is a comma list of `*`, `N`, `N-M`, each optionally followed by `/STEP`;
 *   `N/STEP` means `N-max/STEP`, where day-of-week's max is 6 (SAT) as for `*`, so
 *   "5/2" there is Friday only. `?` is a synonym of `*`, allowed only in the two day
 *   fields (as in Quartz). A range must not be reversed ("22-2" is an error: write
 *   "22-23,0-2"), except that a day-of-week range may end at the name SUN ("FRI-SUN").
 *   Day-of-week 7 is the Sunday after Saturday: "5-7", "7" and "7-7" are fine, but
 *   nothing can start at 7 and go on ("7/2" and "7-5" are errors: write "0/2" or SUN/2,
 *   and "0-5"), since the canonical form, which writes Sunday as 0, must mean the same.
 *   A step must lie between 1 and the width of the field's range minus one.
 *   Macros: @yearly = @annually = "0 0 1 1 *", @monthly = "0 0 1 * *",
 *   @weekly = "0 0 * * 0", @daily = @midnight = "0 0 * * *", @hourly = "0 * * * *".
 *   @reboot, `L`, `W` and `#` are not supported and are reported as such.
 *
 * Day-of-month / day-of-week, as Vixie cron: a day field "is a star" when it is a single
 * `*`, `?` or `* /STEP` element (written `* /` here only because the two characters
 * together would close this comment). If either day field is a star, a day must match
 * both (so with `*` only the other field counts, and "* /2 in day-of-month with MON" means
 * odd-numbered Mondays); if both are restricted, a day matching either one fires. (Vixie
 * also counts a list that starts with `*`, such as "* /2,5", as a star; ratchet treats any
 * list as restricted, which is what the list's author means.)
 *
 * Time zones and DST: times are matched against the zone's local wall clock.
 *   - A local time that does not exist (spring-forward gap) does not fire that day; the
 *     schedule is not moved to the first instant after the gap. "30 2 * * *" in New York
 *     skips 2026-03-08; "0 * * * *" fires at 01:00 EST and then 03:00 EDT.
 *   - A local time that occurs twice (fall-back overlap) fires once, at its first
 *     occurrence. "0 * * * *" in New York on 2026-11-01 fires at 01:00 EDT (05:00Z), not
 *     at 01:00 EST (06:00Z), then at 02:00 EST (07:00Z); "* /15 * * * *" fires at 01:00,
 *     01:15, 01:30, 01:45 EDT and resumes at 02:00 EST. This is "one fire per local wall
 *     time", which is what jobs like "daily at 01:30" need; schedules that must keep a
 *     fixed real-time interval through the overlap should use the UTC zone.
 */
#ifndef RT_CRON_H
#define RT_CRON_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

typedef struct rt_cron rt_cron;
typedef struct rt_tz rt_tz;

/* Instants rt_cron_next accepts as `after`: years 0001 to 9999 (UTC). */
#define RT_CRON_TIME_MIN INT64_C(-62135596800)
#define RT_CRON_TIME_MAX INT64_C(253402300799)

/* How far ahead rt_cron_next searches. Ten years covers every satisfiable expression:
 * the sparsest one, Feb 29, can be 8 years apart (2096 -> 2104). */
#define RT_CRON_HORIZON_YEARS 10

/* Buffer size that always holds rt_cron_format's output. */
#define RT_CRON_FORMAT_MAX 512

/* Parses expr (leading/trailing blanks ignored; fields separated by spaces or tabs).
 * On error returns RT_ERR_INVALID and err->msg names the field and its 1-based column in
 * expr, e.g. "cron \"0 25 * * *\": field 2 (hour) at column 3: 25 is out of range 0-23".
 * *out is freed with rt_cron_free. An expression that can never fire ("0 0 30 2 *")
 * parses; rt_cron_next then returns RT_ERR_NOT_FOUND. */
rt_status rt_cron_parse(const char *expr, rt_cron **out, rt_error *err);
void rt_cron_free(rt_cron *c);

/* The expression as given (blanks trimmed). Owned by c. */
const char *rt_cron_text(const rt_cron *c);

/* Writes the canonical 6-field form ("second minute hour day-of-month month day-of-week",
 * numbers only, e.g. "@weekly" -> "0 0 0 * * 0", "0 9 * * MON-FRI" -> "0 0 9 * * 1-5")
 * into buf like snprintf, and returns the length it needs. The canonical form parses back
 * to the same schedule. */
size_t rt_cron_format(const rt_cron *c, char *buf, size_t len);

/* Loads a zone from the system tz database (TZif v1/v2/v3/v4 files under $TZDIR, default
 * /usr/share/zoneinfo), including the POSIX TZ footer that extends it past its last
 * transition. "UTC" and "Etc/UTC" (any case) always work, even without tzdata. Names
 * that start with "/" or contain ".." are refused (RT_ERR_INVALID); an unknown zone is
 * RT_ERR_NOT_FOUND; a file that is not valid TZif, or holds leap-second records (the
 * "right/" zones, whose clock is not unix time), is RT_ERR_INVALID. Loading reads a file
 * (a few KiB): load each zone once and share it between the schedules that use it. The
 * result is immutable and may be shared between threads. Reads $TZDIR with getenv, so
 * do not setenv concurrently. */
rt_status rt_tz_load(const char *name, rt_tz **out, rt_error *err);

/* Builds a zone from the bytes of a TZif file (name is only used in messages and by
 * rt_tz_name). Same rules and errors as rt_tz_load. */
rt_status rt_tz_parse(const char *name, const void *data, size_t len, rt_tz **out, rt_error *err);
void rt_tz_free(rt_tz *tz);

/* The name the zone was loaded with. Owned by tz. */
const char *rt_tz_name(const rt_tz *tz);

/* Offset from UTC in seconds at the instant t (unix seconds) in zone tz (NULL = UTC). */
int32_t rt_tz_offset(const rt_tz *tz, int64_t t);

/* The first fire time strictly after `after` (unix seconds), in zone tz (NULL = UTC). A
 * local time that does not exist (DST gap) does not fire that day; a local time that
 * occurs twice (DST overlap) fires once, at its first occurrence (see the top of this
 * file). Returns RT_ERR_NOT_FOUND when the expression can never fire (e.g. "0 0 30 2 *")
 * or no fire exists within RT_CRON_HORIZON_YEARS of `after`, and RT_ERR_INVALID when
 * `after` lies outside RT_CRON_TIME_MIN..RT_CRON_TIME_MAX. Pure and reentrant: c and tz
 * are only read, so any number of threads may call it on shared objects. Typical cost is
 * a few hundred nanoseconds (no allocation, no system calls). */
rt_status rt_cron_next(const rt_cron *c, const rt_tz *tz, int64_t after, int64_t *next);

#endif
