/* cron.c — cron expression parser, TZif + POSIX TZ zone reader, and the next-fire search.
 * Parsed expressions and zones are immutable, so rt_cron_next needs no locks and no libc
 * time-zone state (no TZ, no localtime). */
#include "cron.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------ */
/* Civil calendar (proleptic Gregorian), after Howard Hinnant's days_from_civil.          */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[13] = {0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m];
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* 0 = Sunday; 1970-01-01 was a Thursday. */
static int weekday(int64_t days)
{
    int64_t w = (days + 4) % 7;
    return (int)(w < 0 ? w + 7 : w);
}

static int64_t year_of(int64_t t)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t, 86400), &y, &m, &d);
    return y;
}

/* ------------------------------------------------------------------------------------ */
/* Zones                                                                                */

/* Every UTC offset we accept lies within +-MAX_OFFSET, so a local time L can only come
 * from UTC instants in [L - MAX_OFFSET, L + MAX_OFFSET]. RFC 8536 bounds utoff to
 * [-89999, 93599]; POSIX footer offsets stay under 25 h. */
#define MAX_OFFSET 93600
/* Transitions and queries are clamped to +-2^60 s (36 billion years) so that adding an
 * offset can never overflow. */
#define TZ_TIME_LIMIT (INT64_C(1) << 60)
#define TZ_FILE_LIMIT (1 << 20)
#define TZ_MAX_TIMES 100000
#define TZ_FOOTER_MAX 256

typedef struct rule_date {
    char kind;    /* 'J': Julian 1-365 without Feb 29; 'N': 0-365 with it; 'M': month.week.day */
    int a, b, c;  /* J/N: a = day; M: a = month, b = week (5 = last), c = weekday */
    int32_t time; /* seconds after local midnight, -167h..167h (RFC 8536 extension) */
} rule_date;

/* The POSIX TZ string of a TZif footer, which governs instants after the last transition. */
typedef struct posix_tz {
    bool present;
    bool has_dst;
    int32_t std_off, dst_off; /* seconds east of UTC */
    rule_date start, end;     /* DST starts at `start` (standard local time), ends at `end` (DST local time) */
    bool inner; /* both changes fall well inside their year (every real zone): fast path */
} posix_tz;

struct rt_tz {
    size_t n;       /* transitions after merging those that keep the offset */
    int64_t *times; /* ascending UTC instants */
    int32_t *offs;  /* offset in effect from times[i] */
    int32_t off0;   /* offset before times[0] (time type 0, RFC 8536) */
    posix_tz rule;
    char name[];
};

/* A maximal interval [start, end) of UTC during which the offset does not change. */
typedef struct period {
    int64_t start, end;
    int32_t off;
} period;

static int64_t rule_date_utc(const rule_date *r, int64_t y, int32_t off_before)
{
    int64_t day;
    if (r->kind == 'J')
        day = days_from_civil(y, 1, 1) + r->a - 1 + (is_leap(y) && r->a >= 60);
    else if (r->kind == 'N')
        day = days_from_civil(y, 1, 1) + r->a;
    else {
        int64_t first = days_from_civil(y, r->a, 1);
        int dom = 1 + (r->c - weekday(first) + 7) % 7 + 7 * (r->b - 1);
        if (dom > days_in_month(y, r->a))
            dom -= 7; /* week 5 means "last" */
        day = first + dom - 1;
    }
    return day * 86400 + r->time - off_before;
}

typedef struct rule_change {
    int64_t at;
    int32_t off; /* offset from `at` on */
} rule_change;

/* The two changes of year y in time order; at equal instants the DST end comes first, so
 * that all-year DST ("J1/0,J365/25") reads as DST. */
static void year_changes(const posix_tz *r, int64_t y, rule_change c[2])
{
    int64_t s = rule_date_utc(&r->start, y, r->std_off), e = rule_date_utc(&r->end, y, r->dst_off);
    if (s < e) {
        c[0] = (rule_change){s, r->dst_off};
        c[1] = (rule_change){e, r->std_off};
    } else {
        c[0] = (rule_change){e, r->std_off};
        c[1] = (rule_change){s, r->dst_off};
    }
}

static void rule_period_general(const posix_tz *r, int64_t t, int64_t floor, period *p);

/* Period of the footer rule around t, not starting before `floor` (the last explicit
 * transition). With `inner` rules the changes of consecutive years cannot interleave
 * (each lies at least a week inside its year, and rule times shift it by under 7 days),
 * so the changes of t's year and of one neighbour bracket t. */
static void rule_period(const posix_tz *r, int64_t t, int64_t floor, period *p)
{
    if (!r->has_dst) {
        p->start = floor;
        p->end = INT64_MAX;
        p->off = r->std_off;
        return;
    }
    if (!r->inner) {
        rule_period_general(r, t, floor, p);
        return;
    }
    int64_t y = year_of(t + r->std_off);
    rule_change c[2], n[2];
    year_changes(r, y, c);
    if (t < c[0].at) {
        year_changes(r, y - 1, n);
        p->start = n[1].at;
        p->end = c[0].at;
        p->off = n[1].off;
    } else if (t < c[1].at) {
        p->start = c[0].at;
        p->end = c[1].at;
        p->off = c[0].off;
    } else {
        year_changes(r, y + 1, n);
        p->start = c[1].at;
        p->end = n[0].at;
        p->off = c[1].off;
    }
    if (p->start < floor)
        p->start = floor;
}

/* Any rule, however odd its times: the changes of five consecutive years, sorted, bracket
 * t even when rule times push a change a week into the neighbouring year. */
static void rule_period_general(const posix_tz *r, int64_t t, int64_t floor, period *p)
{
    struct {
        int64_t at;
        int32_t off;
        int order; /* at equal instants, a DST end sorts before a DST start (all-year DST) */
    } e[10], tmp;
    int64_t y = year_of(t + r->std_off);
    int n = 0;
    for (int64_t yy = y - 2; yy <= y + 2; yy++) {
        e[n].at = rule_date_utc(&r->start, yy, r->std_off);
        e[n].off = r->dst_off;
        e[n++].order = 1;
        e[n].at = rule_date_utc(&r->end, yy, r->dst_off);
        e[n].off = r->std_off;
        e[n++].order = 0;
    }
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && (e[j - 1].at > e[j].at || (e[j - 1].at == e[j].at && e[j - 1].order > e[j].order)); j--) {
            tmp = e[j];
            e[j] = e[j - 1];
            e[j - 1] = tmp;
        }
    int i = 0;
    while (i + 1 < n && e[i + 1].at <= t)
        i++;
    if (e[i].at > t) { /* cannot happen with |rule time| <= 167h; stay defined anyway */
        p->start = floor;
        p->end = e[0].at;
        p->off = r->std_off;
        return;
    }
    p->start = e[i].at > floor ? e[i].at : floor;
    p->end = i + 1 < n ? e[i + 1].at : INT64_MAX;
    p->off = e[i].off;
}

static void tz_period(const rt_tz *tz, int64_t t, period *p)
{
    if (!tz) {
        p->start = INT64_MIN;
        p->end = INT64_MAX;
        p->off = 0;
        return;
    }
    size_t n = tz->n;
    if (n == 0) {
        if (tz->rule.present)
            rule_period(&tz->rule, t, INT64_MIN, p);
        else {
            p->start = INT64_MIN;
            p->end = INT64_MAX;
            p->off = tz->off0;
        }
        return;
    }
    if (t < tz->times[0]) {
        p->start = INT64_MIN;
        p->end = tz->times[0];
        p->off = tz->off0;
        return;
    }
    size_t lo = 0, hi = n; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    if (lo == n - 1) {
        if (tz->rule.present)
            rule_period(&tz->rule, t, tz->times[lo], p);
        else {
            p->start = tz->times[lo];
            p->end = INT64_MAX;
            p->off = tz->offs[lo];
        }
        return;
    }
    p->start = tz->times[lo];
    p->end = tz->times[lo + 1];
    p->off = tz->offs[lo];
}

int32_t rt_tz_offset(const rt_tz *tz, int64_t t)
{
    period p;
    if (t < -TZ_TIME_LIMIT)
        t = -TZ_TIME_LIMIT;
    if (t > TZ_TIME_LIMIT)
        t = TZ_TIME_LIMIT;
    tz_period(tz, t, &p);
    return p.off;
}

const char *rt_tz_name(const rt_tz *tz)
{
    return tz ? tz->name : "UTC";
}

/* Maps local wall time L (seconds, as if UTC) to the first UTC instant showing it.
 * Returns true with *u set and *resume = the local time at which the period holding *u
 * ends (local times at or after it resolve in a later period). Returns false when L lies
 * in a gap, with *resume = the first local time after the gap. Periods are visited in UTC
 * order, so the first hit is the earliest occurrence. */
static bool local_to_utc(const rt_tz *tz, int64_t L, int64_t *u, int64_t *resume)
{
    period p;
    int64_t hi = L + MAX_OFFSET;
    tz_period(tz, L - MAX_OFFSET, &p);
    for (int i = 0; i < 64; i++) {
        int64_t cand = L - p.off;
        if (cand < p.start) {
            *resume = p.start + p.off;
            return false;
        }
        if (cand < p.end) {
            *u = cand;
            *resume = p.end >= TZ_TIME_LIMIT ? TZ_TIME_LIMIT : p.end + p.off;
            return true;
        }
        if (p.end > hi)
            break;
        tz_period(tz, p.end, &p);
    }
    /* Only reachable with absurd zone data (dozens of transitions within two days). */
    *resume = L + 1;
    return false;
}

/* --- POSIX TZ footer ------------------------------------------------------------------ */

static bool parse_num(const char **s, int maxdigits, int *v)
{
    const char *p = *s;
    int n = 0, val = 0;
    while (isdigit((unsigned char)*p) && n < maxdigits) {
        val = val * 10 + (*p - '0');
        p++;
        n++;
    }
    if (n == 0 || isdigit((unsigned char)*p))
        return false;
    *s = p;
    *v = val;
    return true;
}

static bool parse_tz_abbr(const char **s)
{
    const char *p = *s;
    if (*p == '<') {
        const char *b = ++p;
        while (*p && *p != '>') {
            if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-')
                return false;
            p++;
        }
        if (*p != '>' || p == b)
            return false;
        *s = p + 1;
        return true;
    }
    const char *b = p;
    while (isalpha((unsigned char)*p))
        p++;
    if (p - b < 3)
        return false;
    *s = p;
    return true;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh; returns seconds. */
static bool parse_hms(const char **s, int maxh, int32_t *out)
{
    const char *p = *s;
    int sign = 1, h, m = 0, sec = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!parse_num(&p, 3, &h) || h > maxh)
        return false;
    if (*p == ':') {
        p++;
        if (!parse_num(&p, 2, &m) || m > 59)
            return false;
        if (*p == ':') {
            p++;
            if (!parse_num(&p, 2, &sec) || sec > 59)
                return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    *s = p;
    return true;
}

static bool parse_rule_date(const char **s, rule_date *r)
{
    const char *p = *s;
    r->b = r->c = 0;
    if (*p == 'J') {
        p++;
        r->kind = 'J';
        if (!parse_num(&p, 3, &r->a) || r->a < 1 || r->a > 365)
            return false;
    } else if (*p == 'M') {
        p++;
        r->kind = 'M';
        if (!parse_num(&p, 2, &r->a) || r->a < 1 || r->a > 12 || *p++ != '.')
            return false;
        if (!parse_num(&p, 1, &r->b) || r->b < 1 || r->b > 5 || *p++ != '.')
            return false;
        if (!parse_num(&p, 1, &r->c) || r->c > 6)
            return false;
    } else {
        r->kind = 'N';
        if (!parse_num(&p, 3, &r->a) || r->a > 365)
            return false;
    }
    r->time = 7200;
    if (*p == '/') {
        p++;
        if (!parse_hms(&p, 167, &r->time))
            return false;
    }
    *s = p;
    return true;
}

/* A change on this date lies at least 14 days inside its year: more than a rule time
 * (under 7 days) plus an offset (about 1 day) can move it. */
static bool rule_date_inner(const rule_date *d)
{
    if (d->kind == 'M')
        return d->a >= 2 && d->a <= 11;
    return d->a >= 15 && d->a <= 350;
}

static bool parse_posix_tz(const char *s, posix_tz *r)
{
    int32_t v;
    memset(r, 0, sizeof *r);
    if (!parse_tz_abbr(&s) || !parse_hms(&s, 24, &v))
        return false;
    r->std_off = -v; /* POSIX counts west of Greenwich as positive */
    r->present = true;
    if (*s == '\0')
        return true;
    if (!parse_tz_abbr(&s))
        return false;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*s != ',' && *s != '\0') {
        if (!parse_hms(&s, 24, &v))
            return false;
        r->dst_off = -v;
    }
    if (*s == '\0') {
        /* DST without a rule: use the US rule, as glibc does. zic always writes one. */
        r->start = (rule_date){'M', 3, 2, 0, 7200};
        r->end = (rule_date){'M', 11, 1, 0, 7200};
        r->inner = true;
        return true;
    }
    if (*s++ != ',' || !parse_rule_date(&s, &r->start) || *s++ != ',' || !parse_rule_date(&s, &r->end))
        return false;
    r->inner = rule_date_inner(&r->start) && rule_date_inner(&r->end);
    return *s == '\0';
}

/* --- TZif ------------------------------------------------------------------------------ */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

typedef struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
} tzif_counts;

static bool tzif_header(const unsigned char *d, size_t len, tzif_counts *c)
{
    if (len < 44 || memcmp(d, "TZif", 4) != 0)
        return false;
    c->isut = be32(d + 20);
    c->isstd = be32(d + 24);
    c->leap = be32(d + 28);
    c->time = be32(d + 32);
    c->type = be32(d + 36);
    c->chars = be32(d + 40);
    /* Caps far above any real zone keep the size arithmetic below free of overflow. */
    return c->isut <= 256 && c->isstd <= 256 && c->leap <= 100000 && c->time <= TZ_MAX_TIMES &&
           c->type <= 256 && c->chars <= 65536;
}

static size_t tzif_block_size(const tzif_counts *c, size_t tsize)
{
    return (size_t)c->time * (tsize + 1) + (size_t)c->type * 6 + c->chars + (size_t)c->leap * (tsize + 4) +
           c->isstd + c->isut;
}

static rt_status tz_invalid(rt_error *err, const char *name, const char *why)
{
    return rt_error_set(err, RT_ERR_INVALID, "time zone \"%s\": %s", name, why);
}

static rt_tz *tz_alloc(const char *name, size_t ntimes)
{
    size_t nlen = strlen(name);
    rt_tz *tz = calloc(1, sizeof *tz + nlen + 1);
    if (!tz)
        return NULL;
    memcpy(tz->name, name, nlen + 1);
    if (ntimes) {
        tz->times = malloc(ntimes * sizeof *tz->times);
        tz->offs = malloc(ntimes * sizeof *tz->offs);
        if (!tz->times || !tz->offs) {
            rt_tz_free(tz);
            return NULL;
        }
    }
    return tz;
}

/* The POSIX TZ string after a version 2+ file's data (f..end), for times past its last
 * transition; an empty one leaves rule zeroed. */
static rt_status tz_footer(const char *name, const unsigned char *f, const unsigned char *end, posix_tz *rule,
                           rt_error *err)
{
    if (f >= end || *f != '\n')
        return tz_invalid(err, name, "missing TZ string footer");
    const unsigned char *nl = memchr(f + 1, '\n', (size_t)(end - f - 1));
    if (!nl)
        return tz_invalid(err, name, "unterminated TZ string footer");
    size_t flen = (size_t)(nl - f - 1);
    if (flen >= TZ_FOOTER_MAX)
        return tz_invalid(err, name, "TZ string footer too long");
    if (flen == 0)
        return RT_OK;
    char footer[TZ_FOOTER_MAX];
    memcpy(footer, f + 1, flen);
    footer[flen] = '\0';
    if (!memchr(footer, '\0', flen) && parse_posix_tz(footer, rule))
        return RT_OK;
    char msg[TZ_FOOTER_MAX + 64];
    for (size_t i = 0; i < flen; i++)
        if (!isprint((unsigned char)footer[i]))
            footer[i] = '?';
    snprintf(msg, sizeof msg, "unsupported TZ string footer \"%s\"", footer);
    return tz_invalid(err, name, msg);
}

rt_status rt_tz_parse(const char *name, const void *data, size_t len, rt_tz **out, rt_error *err)
{
    if (!out)
        return rt_error_set(err, RT_ERR_INVALID, "rt_tz_parse: out is NULL");
    *out = NULL;
    if (!name)
        name = "";
    if (!data)
        return tz_invalid(err, name, "no data");
    const unsigned char *d = data;
    tzif_counts c;
    if (!tzif_header(d, len, &c))
        return tz_invalid(err, name, "not a TZif file (bad magic or header)");
    int version = d[4] >= '2' ? 2 : 1;
    size_t tsize = 4, off = 44;
    if (version >= 2) {
        /* Skip the 32-bit block; the 64-bit one after it is complete and authoritative. */
        size_t skip = tzif_block_size(&c, 4);
        if (skip > len - off || !tzif_header(d + off + skip, len - off - skip, &c))
            return tz_invalid(err, name, "truncated TZif file (no version 2+ header)");
        off += skip + 44;
        tsize = 8;
    }
    size_t block = tzif_block_size(&c, tsize);
    if (block > len - off)
        return tz_invalid(err, name, "truncated TZif data block");
    if (c.type == 0 || c.chars == 0 || (c.isut != 0 && c.isut != c.type) || (c.isstd != 0 && c.isstd != c.type))
        return tz_invalid(err, name, "inconsistent TZif counts");
    if (c.leap != 0)
        return tz_invalid(err, name, "has leap-second records (a \"right/\" zone); use the plain zone");

    const unsigned char *tp = d + off;                 /* transition times */
    const unsigned char *ip = tp + (size_t)c.time * tsize; /* type indexes */
    const unsigned char *yp = ip + c.time;             /* ttinfo records */
    int32_t type_off[256];
    for (uint32_t i = 0; i < c.type; i++) {
        int32_t utoff = (int32_t)be32(yp + 6 * i);
        if (utoff < -89999 || utoff > 93599 || yp[6 * i + 4] > 1 || yp[6 * i + 5] >= c.chars)
            return tz_invalid(err, name, "bad local time type record");
        type_off[i] = utoff;
    }

    posix_tz rule = {0};
    rt_status st = version >= 2 ? tz_footer(name, d + off + block, d + len, &rule, err) : RT_OK;
    if (st != RT_OK)
        return st;

    rt_tz *tz = tz_alloc(name, c.time);
    if (!tz)
        return rt_error_set(err, RT_ERR_NOMEM, "time zone \"%s\": out of memory", name);
    tz->rule = rule;
    tz->off0 = type_off[0];
    int64_t prev = INT64_MIN;
    for (uint32_t i = 0; i < c.time; i++) {
        int64_t t = tsize == 8 ? be64(tp + 8 * i) : (int64_t)(int32_t)be32(tp + 4 * i);
        if (i > 0 && t <= prev) {
            rt_tz_free(tz);
            return tz_invalid(err, name, "transition times are not ascending");
        }
        prev = t;
        if (ip[i] >= c.type) {
            rt_tz_free(tz);
            return tz_invalid(err, name, "transition names an unknown local time type");
        }
        int32_t o = type_off[ip[i]];
        if (t < -TZ_TIME_LIMIT) { /* "big bang" sentinels: in force since before our range */
            tz->off0 = o;
            continue;
        }
        if (t > TZ_TIME_LIMIT)
            break;
        /* Changes of abbreviation or isdst alone are no transition for our purposes. */
        if (o == (tz->n ? tz->offs[tz->n - 1] : tz->off0))
            continue;
        tz->times[tz->n] = t;
        tz->offs[tz->n] = o;
        tz->n++;
    }
    *out = tz;
    return RT_OK;
}

void rt_tz_free(rt_tz *tz)
{
    if (!tz)
        return;
    free(tz->times);
    free(tz->offs);
    free(tz);
}

static bool tz_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 255 || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!isalnum(ch) && ch != '/' && ch != '_' && ch != '-' && ch != '+' && ch != '.')
            return false;
    }
    return true;
}

rt_status rt_tz_load(const char *name, rt_tz **out, rt_error *err)
{
    if (!out)
        return rt_error_set(err, RT_ERR_INVALID, "rt_tz_load: out is NULL");
    *out = NULL;
    if (!name)
        return rt_error_set(err, RT_ERR_INVALID, "time zone: no name given");
    if (!tz_name_valid(name)) {
        char shown[72];
        size_t i = 0;
        for (; name[i] && i < 64; i++)
            shown[i] = isprint((unsigned char)name[i]) && name[i] != '"' ? name[i] : '?';
        shown[i] = '\0';
        return rt_error_set(err, RT_ERR_INVALID,
                            "time zone \"%s%s\": invalid name: use an IANA name such as \"Europe/Berlin\" "
                            "(letters, digits, '/', '_', '-', '+'; no leading '/', no \"..\")",
                            shown, name[i] ? "..." : "");
    }
    if (strcasecmp(name, "UTC") == 0 || strcasecmp(name, "Etc/UTC") == 0) {
        /* Built in, so UTC schedules work on hosts without tzdata. */
        rt_tz *tz = tz_alloc(name, 0);
        if (!tz)
            return rt_error_set(err, RT_ERR_NOMEM, "time zone \"%s\": out of memory", name);
        *out = tz;
        return RT_OK;
    }
    const char *dir = getenv("TZDIR");
    if (!dir || !*dir)
        dir = "/usr/share/zoneinfo";
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
        return rt_error_set(err, RT_ERR_INVALID, "time zone \"%s\": path too long", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return rt_error_set(err, RT_ERR_NOT_FOUND, "unknown time zone \"%s\" (no %s)", name, path);
        return rt_error_set(err, RT_ERR_IO, "time zone \"%s\": %s: %s", name, path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return rt_error_set(err, RT_ERR_NOT_FOUND, "unknown time zone \"%s\" (%s is not a zone file)", name, path);
    }
    if (st.st_size > TZ_FILE_LIMIT) {
        close(fd);
        return tz_invalid(err, name, "zone file is too large to be TZif");
    }
    size_t size = (size_t)st.st_size, got = 0;
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return rt_error_set(err, RT_ERR_NOMEM, "time zone \"%s\": out of memory", name);
    }
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    rt_status s = rt_tz_parse(name, buf, got, out, err);
    free(buf);
    return s;
}

/* ------------------------------------------------------------------------------------ */
/* Cron expressions                                                                      */

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MON, F_DOW, F_COUNT };

static const struct field_spec {
    const char *name;
    int min, max; /* values accepted in the text (day-of-week 7 = Sunday) */
    int top;      /* highest canonical value: '*' and "N/STEP" run up to it */
} FIELDS[F_COUNT] = {
    {"second", 0, 59, 59},       {"minute", 0, 59, 59}, {"hour", 0, 23, 23},
    {"day-of-month", 1, 31, 31}, {"month", 1, 12, 12},  {"day-of-week", 0, 7, 6},
};

static const char MONTH_NAMES[12][4] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                        "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char DAY_NAMES[7][4] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

struct rt_cron {
    uint64_t mask[F_COUNT]; /* bit v set = value v matches (day-of-week 0-6) */
    uint64_t dowpat[7];     /* days 1-31 on a weekday in mask[F_DOW], for a month starting on weekday w */
    bool dom_star, dow_star;
    bool never; /* no listed day exists in any listed month ("0 0 30 2 *") */
    char text[];
};

typedef struct parser {
    const char *expr; /* whole expression: columns are offsets into it */
    rt_error *err;
    int field_no; /* 1-based position of the field in expr; 0 = not in a field */
    int kind;     /* F_* */
} parser;

static void quote_expr(const char *s, char *buf, size_t cap)
{
    size_t o = 0, i = 0;
    for (; s[i] && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            buf[o++] = '\\';
            buf[o++] = (char)ch;
        } else
            buf[o++] = isprint(ch) ? (char)ch : '?';
    }
    if (s[i])
        o += (size_t)snprintf(buf + o, cap - o, "...");
    buf[o] = '\0';
}

static rt_status parse_error(const parser *p, const char *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static rt_status parse_error(const parser *p, const char *at, const char *fmt, ...)
{
    char detail[256], quoted[96];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    quote_expr(p->expr, quoted, sizeof quoted);
    if (p->field_no > 0)
        return rt_error_set(p->err, RT_ERR_INVALID, "cron \"%s\": field %d (%s) at column %zu: %s", quoted,
                            p->field_no, FIELDS[p->kind].name, (size_t)(at - p->expr) + 1, detail);
    if (at)
        return rt_error_set(p->err, RT_ERR_INVALID, "cron \"%s\": column %zu: %s", quoted,
                            (size_t)(at - p->expr) + 1, detail);
    return rt_error_set(p->err, RT_ERR_INVALID, "cron \"%s\": %s", quoted, detail);
}

static rt_status unexpected_char(const parser *p, const char *at)
{
    unsigned char ch = (unsigned char)*at;
    if (ch == 'L' || ch == 'W' || ch == '#' || ch == 'l' || ch == 'w')
        return parse_error(p, at, "'%c' (a Quartz extension) is not supported", ch);
    if (isprint(ch))
        return parse_error(p, at, "unexpected character '%c'", ch);
    return parse_error(p, at, "unexpected byte 0x%02x", ch);
}

/* A number or (month, day-of-week) a three-letter name. Reports `is_name` so that a
 * day-of-week range may end at SUN. */
static rt_status parse_value(const parser *p, const char **s, const char *end, int *v, bool *is_name)
{
    const char *b = *s, *q = b;
    const struct field_spec *f = &FIELDS[p->kind];
    *is_name = false;
    if (q < end && isdigit((unsigned char)*q)) {
        long val = 0;
        while (q < end && isdigit((unsigned char)*q)) {
            if (val < 100000)
                val = val * 10 + (*q - '0');
            q++;
        }
        if (val < f->min || val > f->max)
            return parse_error(p, b, "%.*s is out of range %d-%d", (int)(q - b > 12 ? 12 : q - b), b, f->min,
                               f->max);
        *v = (int)val;
        *s = q;
        return RT_OK;
    }
    if (q < end && isalpha((unsigned char)*q)) {
        while (q < end && isalpha((unsigned char)*q))
            q++;
        int n = (int)(q - b);
        if (p->kind == F_MON || p->kind == F_DOW) {
            int count = p->kind == F_MON ? 12 : 7;
            for (int i = 0; n == 3 && i < count; i++) {
                const char *nm = p->kind == F_MON ? MONTH_NAMES[i] : DAY_NAMES[i];
                if (strncasecmp(b, nm, 3) == 0) {
                    *v = p->kind == F_MON ? i + 1 : i;
                    *is_name = true;
                    *s = q;
                    return RT_OK;
                }
            }
            return parse_error(p, b, "unknown %s name \"%.*s\" (use %s)", f->name, n > 12 ? 12 : n, b,
                               p->kind == F_MON ? "JAN-DEC or 1-12" : "SUN-SAT or 0-7");
        }
        if ((n == 1 && (*b == 'L' || *b == 'W' || *b == 'l' || *b == 'w')) || (n == 2 && strncasecmp(b, "LW", 2) == 0))
            return unexpected_char(p, b);
        return parse_error(p, b, "\"%.*s\" is not a number (names are only allowed for month and day-of-week)",
                           n > 12 ? 12 : n, b);
    }
    if (q >= end)
        return parse_error(p, b, "expected a value");
    return unexpected_char(p, q);
}

static rt_status parse_element(const parser *p, const char *s, const char *end, uint64_t *mask)
{
    const struct field_spec *f = &FIELDS[p->kind];
    const char *el = s;
    int lo, hi, step = 1;
    bool name;
    rt_status st;
    if (*s == '*' || *s == '?') {
        if (*s == '?' && p->kind != F_DOM && p->kind != F_DOW)
            return parse_error(p, s, "'?' is only allowed in day-of-month and day-of-week");
        if (*s == '?' && s + 1 < end && s[1] == '/')
            return parse_error(p, s + 1, "'?' takes no step (use '*/N')");
        lo = f->min;
        hi = f->top;
        s++;
    } else {
        if ((st = parse_value(p, &s, end, &lo, &name)) != RT_OK)
            return st;
        hi = lo;
        if (s < end && *s == '-') {
            s++;
            if ((st = parse_value(p, &s, end, &hi, &name)) != RT_OK)
                return st;
            if (p->kind == F_DOW && hi == 0 && name && lo > 0)
                hi = 7; /* FRI-SUN */
            if (lo > hi && lo > f->top && hi == f->min) /* day-of-week "7-0" */
                return parse_error(p, el, "range %.*s is reversed (%d is Sunday at the end of the week; for "
                                          "Sunday write \"%d\")", (int)(s - el > 12 ? 12 : s - el), el, lo, f->min);
            if (lo > hi && lo > f->top) /* day-of-week "7-5": 7 is the Sunday after Saturday */
                return parse_error(p, el, "range %.*s is reversed (%d is Sunday at the end of the week; for a "
                                          "week that starts on Sunday write \"%d-%d\")",
                                   (int)(s - el > 12 ? 12 : s - el), el, lo, f->min, hi);
            if (lo > hi)
                return parse_error(p, el, "range %.*s is reversed (start must not exceed end; split it, e.g. \"%d-%d,%d-%d\")",
                                   (int)(s - el > 12 ? 12 : s - el), el, lo, f->top, f->min, hi);
        } else if (s < end && *s == '/') {
            /* "N/STEP" = "N-top/STEP". Only day-of-week has values above top: "7/2" would
             * run from the Sunday after Saturday up to Saturday, which is no day at all. */
            if (lo > f->top)
                return parse_error(p, el, "%d/STEP has no day after %d (it is Sunday at the end of the week); "
                                          "start at %d or SUN (\"%d/2\" is Sunday, Tuesday, Thursday, Saturday)",
                                   lo, lo, f->min, f->min);
            hi = f->top;
        }
    }
    if (s < end && *s == '/') {
        const char *sp = ++s;
        if (s >= end || !isdigit((unsigned char)*s))
            return parse_error(p, sp, "expected a step number after '/'");
        long v = 0;
        while (s < end && isdigit((unsigned char)*s)) {
            if (v < 100000)
                v = v * 10 + (*s - '0');
            s++;
        }
        int maxstep = f->top - f->min;
        if (v < 1 || v > maxstep)
            return parse_error(p, sp, "step %.*s must be between 1 and %d", (int)(s - sp > 12 ? 12 : s - sp), sp,
                               maxstep);
        step = (int)v;
    }
    if (s < end)
        return s[0] == '-' ? parse_error(p, s, "unexpected '-' (a range needs plain values: N-M or N-M/STEP)")
                           : unexpected_char(p, s);
    for (int v = lo; v <= hi; v += step)
        *mask |= UINT64_C(1) << (p->kind == F_DOW && v == 7 ? 0 : v);
    return RT_OK;
}

static rt_status parse_field(const parser *p, const char *s, const char *end, uint64_t *mask, bool *star)
{
    int elements = 0;
    *mask = 0;
    *star = (*s == '*' || *s == '?');
    for (;;) {
        const char *e = s;
        while (e < end && *e != ',')
            e++;
        if (e == s)
            return parse_error(p, s, "empty list element");
        rt_status st = parse_element(p, s, e, mask);
        if (st != RT_OK)
            return st;
        elements++;
        if (e == end)
            break;
        s = e + 1;
        if (s == end)
            return parse_error(p, s - 1, "list ends with ','");
    }
    /* As Vixie cron: only a lone `*`, `?` or `* /N` makes a day field unrestricted. */
    if (elements > 1)
        *star = false;
    return RT_OK;
}

static const struct {
    const char *name, *expr;
} MACROS[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
    {"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

static void compute_derived(rt_cron *c)
{
    for (int w = 0; w < 7; w++) {
        c->dowpat[w] = 0;
        for (int d = 1; d <= 31; d++)
            if (c->mask[F_DOW] & (UINT64_C(1) << ((w + d - 1) % 7)))
                c->dowpat[w] |= UINT64_C(1) << d;
    }
    /* Both restricted: OR, and every month has every weekday, so it fires. Otherwise a
     * listed day must exist in a listed month (Feb 29 counts). */
    c->never = false;
    if (c->dom_star || c->dow_star) {
        static const int maxdim[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool any = false;
        for (int m = 1; m <= 12 && !any; m++)
            if (c->mask[F_MON] & (UINT64_C(1) << m))
                any = (c->mask[F_DOM] & ((UINT64_C(1) << (maxdim[m] + 1)) - 2)) != 0;
        c->never = !any;
    }
}

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

#define CRON_MAX_LEN 1024

/* A macro (@daily, ...) at b..e: *fields..*fend becomes its expansion. */
static rt_status expand_macro(parser *p, const char *b, const char *e, const char **fields, const char **fend)
{
    const char *w = b;
    while (w < e && !is_blank(*w))
        w++;
    size_t n = (size_t)(w - b);
    *fields = NULL;
    for (size_t i = 0; i < sizeof MACROS / sizeof MACROS[0]; i++)
        if (strlen(MACROS[i].name) == n && strncasecmp(b, MACROS[i].name, n) == 0)
            *fields = MACROS[i].expr;
    if (!*fields) {
        if (n == 7 && strncasecmp(b, "@reboot", 7) == 0)
            return parse_error(p, b, "@reboot is not supported (ratchet has no boot-time trigger)");
        if (n == 6 && strncasecmp(b, "@every", 6) == 0)
            return parse_error(p, b, "@every is not supported; use a step such as \"*/5 * * * *\"");
        return parse_error(p, b, "unknown macro \"%.*s\" (use @yearly, @annually, @monthly, @weekly, "
                                 "@daily, @midnight or @hourly)", (int)(n > 16 ? 16 : n), b);
    }
    if (w != e)
        return parse_error(p, w, "nothing may follow the macro %.*s", (int)n, b);
    *fend = *fields + strlen(*fields);
    return RT_OK;
}

/* The blank-separated fields of fields..fend (5, or 6 with seconds first). */
static rt_status split_fields(parser *p, const char *fields, const char *fend, const char *start[6],
                              const char *stop[6], int *n_fields)
{
    int count = 0;
    for (const char *s = fields; s < fend;) {
        while (s < fend && is_blank(*s))
            s++;
        if (s == fend)
            break;
        const char *t = s;
        while (t < fend && !is_blank(*t))
            t++;
        if (count == 6) {
            int total = count;
            for (const char *q = s; q < fend;) {
                while (q < fend && is_blank(*q))
                    q++;
                if (q == fend)
                    break;
                total++;
                while (q < fend && !is_blank(*q))
                    q++;
            }
            return parse_error(p, s, "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                                     "(second first), got %d", total);
        }
        start[count] = s;
        stop[count++] = t;
        s = t;
    }
    if (count != 5 && count != 6)
        return parse_error(p, NULL, "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                                    "(second first), got %d", count);
    *n_fields = count;
    return RT_OK;
}

rt_status rt_cron_parse(const char *expr, rt_cron **out, rt_error *err)
{
    if (!out)
        return rt_error_set(err, RT_ERR_INVALID, "rt_cron_parse: out is NULL");
    *out = NULL;
    if (!expr)
        return rt_error_set(err, RT_ERR_INVALID, "cron: no expression given");
    parser p = {.expr = expr, .err = err};
    size_t len = strlen(expr);
    if (len > CRON_MAX_LEN)
        return parse_error(&p, NULL, "expression is longer than %d characters", CRON_MAX_LEN);
    const char *b = expr, *e = expr + len;
    while (b < e && is_blank(*b))
        b++;
    while (e > b && is_blank(e[-1]))
        e--;
    if (b == e)
        return parse_error(&p, NULL, "empty expression");

    const char *fields = b; /* the text whose fields we parse: expr, or a macro's expansion */
    const char *fend = e;
    const char *start[6], *stop[6];
    int count = 0;
    rt_status st = *b == '@' ? expand_macro(&p, b, e, &fields, &fend) : RT_OK;
    if (st == RT_OK)
        st = split_fields(&p, fields, fend, start, stop, &count);
    if (st != RT_OK)
        return st;

    rt_cron *c = calloc(1, sizeof *c + (size_t)(e - b) + 1);
    if (!c)
        return rt_error_set(err, RT_ERR_NOMEM, "cron: out of memory");
    memcpy(c->text, b, (size_t)(e - b));
    c->text[e - b] = '\0';
    int first = count == 6 ? F_SEC : F_MIN;
    if (count == 5)
        c->mask[F_SEC] = 1;
    for (int i = 0; i < count; i++) {
        bool star;
        p.field_no = i + 1;
        p.kind = first + i;
        st = parse_field(&p, start[i], stop[i], &c->mask[first + i], &star);
        if (st != RT_OK) {
            free(c);
            return st;
        }
        if (p.kind == F_DOM)
            c->dom_star = star;
        else if (p.kind == F_DOW)
            c->dow_star = star;
    }
    compute_derived(c);
    *out = c;
    return RT_OK;
}

void rt_cron_free(rt_cron *c)
{
    free(c);
}

const char *rt_cron_text(const rt_cron *c)
{
    return c ? c->text : "";
}

/* --- canonical form ----------------------------------------------------------------- */

typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->len < b->cap ? b->p + b->len : NULL, b->len < b->cap ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n > 0)
        b->len += (size_t)n;
}

static uint64_t progression(int lo, int hi, int step)
{
    uint64_t m = 0;
    for (int v = lo; v <= hi; v += step)
        m |= UINT64_C(1) << v;
    return m;
}

static void format_field(sbuf *b, const rt_cron *c, int kind)
{
    const struct field_spec *f = &FIELDS[kind];
    uint64_t m = c->mask[kind];
    bool day = kind == F_DOM || kind == F_DOW;
    bool star = (kind == F_DOM && c->dom_star) || (kind == F_DOW && c->dow_star);
    if (!day || star) {
        if (m == progression(f->min, f->top, 1)) {
            sb_printf(b, "*");
            return;
        }
        /* A star day field is always `* /N` (the star matters for day matching).
         * Elsewhere print a step only where it reads naturally: it divides the field
         * evenly ("* /15") and yields 3 values or more (JAN,JUL stays "1,7"). */
        int width = f->top - f->min + 1;
        for (int step = 2; step < width; step++)
            if ((star || (width % step == 0 && width / step >= 3)) && m == progression(f->min, f->top, step)) {
                sb_printf(b, "*/%d", step);
                return;
            }
    }
    bool sep = false;
    for (int v = f->min; v <= f->top;) {
        if (!(m & (UINT64_C(1) << v))) {
            v++;
            continue;
        }
        int r = v;
        while (r + 1 <= f->top && (m & (UINT64_C(1) << (r + 1))))
            r++;
        if (r - v >= 2)
            sb_printf(b, "%s%d-%d", sep ? "," : "", v, r);
        else if (r == v + 1)
            sb_printf(b, "%s%d,%d", sep ? "," : "", v, r);
        else
            sb_printf(b, "%s%d", sep ? "," : "", v);
        sep = true;
        v = r + 1;
    }
}

size_t rt_cron_format(const rt_cron *c, char *buf, size_t len)
{
    sbuf b = {buf, len, 0};
    if (len)
        buf[0] = '\0';
    if (!c)
        return 0;
    for (int k = 0; k < F_COUNT; k++) {
        if (k)
            sb_printf(&b, " ");
        format_field(&b, c, k);
    }
    return b.len;
}

/* --- next fire ------------------------------------------------------------------------ */

typedef struct civil {
    int64_t y;
    int mo, d, h, mi, s;
} civil;

static void civil_from_secs(int64_t L, civil *t)
{
    int64_t days = floor_div(L, 86400);
    int secs = (int)(L - days * 86400);
    civil_from_days(days, &t->y, &t->mo, &t->d);
    t->h = secs / 3600;
    t->mi = secs / 60 % 60;
    t->s = secs % 60;
}

static int64_t civil_to_secs(const civil *t)
{
    return days_from_civil(t->y, t->mo, t->d) * 86400 + t->h * 3600 + t->mi * 60 + t->s;
}

static uint64_t day_mask(const rt_cron *c, int64_t y, int m)
{
    uint64_t dom = c->mask[F_DOM], dow = c->dowpat[weekday(days_from_civil(y, m, 1))];
    uint64_t days = (c->dom_star || c->dow_star) ? (dom & dow) : (dom | dow);
    return days & ((UINT64_C(1) << (days_in_month(y, m) + 1)) - 2);
}

/* Moves t forward to the first local time >= t that the expression matches, skipping
 * whole months, days, hours and minutes that cannot match. Returns false past ylimit. */
static bool next_match(const rt_cron *c, civil *t, int64_t ylimit)
{
    for (;;) {
        if (t->y > ylimit)
            return false;
        uint64_t m = c->mask[F_MON] & (~UINT64_C(0) << t->mo);
        if (!m) {
            t->y++;
            t->mo = 1;
            t->d = 1;
            t->h = t->mi = t->s = 0;
            continue;
        }
        int mo = __builtin_ctzll(m);
        if (mo != t->mo) {
            t->mo = mo;
            t->d = 1;
            t->h = t->mi = t->s = 0;
        }
        m = day_mask(c, t->y, t->mo) & (~UINT64_C(0) << t->d);
        if (!m) {
            t->mo++;
            t->d = 1;
            t->h = t->mi = t->s = 0;
            continue; /* month 13 has no bit: rolls the year above */
        }
        int d = __builtin_ctzll(m);
        if (d != t->d) {
            t->d = d;
            t->h = t->mi = t->s = 0;
        }
        m = c->mask[F_HOUR] & (~UINT64_C(0) << t->h);
        if (!m) {
            t->d++;
            t->h = t->mi = t->s = 0;
            continue;
        }
        int h = __builtin_ctzll(m);
        if (h != t->h) {
            t->h = h;
            t->mi = t->s = 0;
        }
        m = c->mask[F_MIN] & (~UINT64_C(0) << t->mi);
        if (!m) {
            t->h++;
            t->mi = t->s = 0;
            continue;
        }
        int mi = __builtin_ctzll(m);
        if (mi != t->mi) {
            t->mi = mi;
            t->s = 0;
        }
        m = c->mask[F_SEC] & (~UINT64_C(0) << t->s);
        if (!m) {
            t->mi++;
            t->s = 0;
            continue;
        }
        t->s = __builtin_ctzll(m);
        return true;
    }
}

/* Each round either fires or skips past a gap or an already-fired overlap, of which a
 * zone has at most a few per year; the cap only guards against pathological zone data. */
#define NEXT_MAX_ROUNDS 100000

rt_status rt_cron_next(const rt_cron *c, const rt_tz *tz, int64_t after, int64_t *next)
{
    if (!c || !next || after < RT_CRON_TIME_MIN || after > RT_CRON_TIME_MAX)
        return RT_ERR_INVALID;
    if (c->never)
        return RT_ERR_NOT_FOUND;
    /* Fire instants are increasing in local time (an overlap's local times map to their
     * first occurrence), so the answer is the first matching, existing local time at or
     * after the local time of after+1 whose first occurrence is later than `after`. */
    int64_t u0 = after + 1;
    civil t;
    civil_from_secs(u0 + rt_tz_offset(tz, u0), &t);
    int64_t ylimit = t.y + RT_CRON_HORIZON_YEARS;
    for (int round = 0; round < NEXT_MAX_ROUNDS; round++) {
        if (!next_match(c, &t, ylimit))
            return RT_ERR_NOT_FOUND;
        int64_t L = civil_to_secs(&t), u, resume;
        if (local_to_utc(tz, L, &u, &resume)) {
            if (u > after) {
                *next = u;
                return RT_OK;
            }
            /* L already fired at its first occurrence and `after` lies in the repeat: the
             * rest of that first period's local times did too. */
            if (resume <= L)
                resume = L + 1;
        }
        if (resume >= TZ_TIME_LIMIT)
            return RT_ERR_NOT_FOUND;
        civil_from_secs(resume, &t);
    }
    return RT_ERR_NOT_FOUND;
}
