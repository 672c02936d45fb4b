#!/usr/bin/env bash
# Load on POST /api/v1/events: RATCHET_TEST_LOAD_CLIENTS (200) keep-alive clients for
# RATCHET_TEST_LOAD_SECONDS (10) against a serve with tokens on. Each client sends one event
# at a time and waits for the answer, and finishes its request in flight at the end, so
# every event sent was answered: no error may occur, and the database must hold exactly
# the events answered 200 (none lost, none doubled). Prints requests/s and latency
# percentiles. The client is a small C program built here with cc.
source "$(dirname "$0")/lib.sh"
rt_test_init api_load

CLIENTS=${RATCHET_TEST_LOAD_CLIENTS:-200}
SECONDS_=${RATCHET_TEST_LOAD_SECONDS:-10}
W=$T/workflows
mkdir -p "$W"
export RATCHET_WORKFLOWS=$W RATCHET_LOG_LEVEL=info
cat >"$W/other.json" <<'EOF'
{"id": "other", "triggers": [{"event": "not.load"}], "steps": [{"id": "a", "uses": "transform", "with": {"value": 1}}]}
EOF

cat >"$T/load.c" <<'EOF'
/* load.c — N keep-alive HTTP/1.1 clients POSTing one event each at a time. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *host, *token, *prefix;
static int port, seconds;
static int64_t deadline_us;

typedef struct client {
    pthread_t th;
    int idx;
    uint64_t ok, errors, reconnects;
    uint32_t *lat;
    size_t n_lat, cap_lat;
    uint64_t *acked; /* request numbers answered 200 */
} client;

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (int tries = 0; connect(fd, (struct sockaddr *)&a, sizeof a) != 0; tries++) {
        if (tries == 50) {
            close(fd);
            return -1;
        }
        usleep(20000);
    }
    return fd;
}

static int write_all(int fd, const char *b, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, b, n);
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads one response; returns its status or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;
    while (!(end = memmem(buf, len, "\r\n\r\n", 4))) {
        if (len == cap)
            return -1;
        ssize_t r = read(fd, buf + len, cap - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    int status = atoi(buf + 9);
    size_t head = (size_t)(end - buf) + 4, clen = 0;
    for (char *p = buf; p < end; p++) {
        if (!strncasecmp(p, "\r\nContent-Length:", 17)) {
            clen = strtoul(p + 17, NULL, 10);
            break;
        }
    }
    while (len < head + clen) {
        if (len == cap)
            return -1;
        ssize_t r = read(fd, buf + len, cap - len);
        if (r <= 0)
            return -1;
        len += (size_t)r;
    }
    if (status != 200) {
        buf[len < cap ? len : cap - 1] = '\0';
        fprintf(stderr, "status %d: %s\n", status, buf + head);
    }
    return status;
}

static void *run(void *arg)
{
    client *c = arg;
    char body[256], req[1024], resp[8192];
    int fd = dial();
    for (uint64_t n = 0; fd >= 0 && now_us() < deadline_us; n++) {
        int bl = snprintf(body, sizeof body, "{\"name\":\"load.test\",\"id\":\"%s-%d-%llu\",\"data\":{\"n\":%llu}}",
                          prefix, c->idx, (unsigned long long)n, (unsigned long long)n);
        int rl = snprintf(req, sizeof req,
                          "POST /api/v1/events HTTP/1.1\r\nHost: %s:%d\r\nAuthorization: Bearer %s\r\n"
                          "Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
                          host, port, token, bl, body);
        int64_t t0 = now_us();
        int status = write_all(fd, req, (size_t)rl) == 0 ? read_response(fd, resp, sizeof resp) : -1;
        int64_t dt = now_us() - t0;
        if (status == 200) {
            c->acked = realloc(c->acked, (c->ok + 1) * sizeof *c->acked);
            c->acked[c->ok++] = n;
        } else {
            c->errors++;
            if (c->errors <= 3)
                fprintf(stderr, "client %d: request %llu failed (status %d, errno %s)\n", c->idx,
                        (unsigned long long)n, status, strerror(errno));
            if (status < 0) { /* the connection broke: one more for the next request */
                close(fd);
                fd = dial();
                c->reconnects++;
            }
        }
        if (c->n_lat == c->cap_lat) {
            c->cap_lat = c->cap_lat ? c->cap_lat * 2 : 4096;
            c->lat = realloc(c->lat, c->cap_lat * sizeof *c->lat);
        }
        c->lat[c->n_lat++] = (uint32_t)dt;
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 8) {
        fprintf(stderr, "usage: load HOST PORT CLIENTS SECONDS TOKEN PREFIX [ACKED-IDS-FILE]\n");
        return 2;
    }
    host = argv[1];
    port = atoi(argv[2]);
    int n = atoi(argv[3]);
    seconds = atoi(argv[4]);
    token = argv[5];
    prefix = argv[6];
    client *cs = calloc((size_t)n, sizeof *cs);
    int64_t t0 = now_us();
    deadline_us = t0 + (int64_t)seconds * 1000000;
    for (int i = 0; i < n; i++) {
        cs[i].idx = i;
        pthread_create(&cs[i].th, NULL, run, &cs[i]);
    }
    uint64_t ok = 0, errors = 0, reconnects = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(cs[i].th, NULL);
        ok += cs[i].ok;
        errors += cs[i].errors;
        reconnects += cs[i].reconnects;
        total += cs[i].n_lat;
    }
    double elapsed = (double)(now_us() - t0) / 1e6;
    uint32_t *all = malloc((total ? total : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        memcpy(all + k, cs[i].lat, cs[i].n_lat * sizeof *all);
        k += cs[i].n_lat;
    }
    qsort(all, total, sizeof *all, cmp);
#define PCT(p) (total ? all[(size_t)((double)(total - 1) * (p))] / 1000.0 : 0)
    printf("clients=%d seconds=%.2f requests=%zu ok=%llu errors=%llu reconnects=%llu rps=%.0f "
           "p50_ms=%.2f p90_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
           n, elapsed, total, (unsigned long long)ok, (unsigned long long)errors, (unsigned long long)reconnects,
           (double)total / elapsed, PCT(0.50), PCT(0.90), PCT(0.99), total ? all[total - 1] / 1000.0 : 0);
    if (argc == 8) {
        FILE *f = fopen(argv[7], "w");
        for (int i = 0; f && i < n; i++)
            for (uint64_t a = 0; a < cs[i].ok; a++)
                fprintf(f, "%s-%d-%llu\n", prefix, i, (unsigned long long)cs[i].acked[a]);
        if (f)
            fclose(f);
    }
    return errors ? 1 : 0;
}
EOF
cc -O2 -std=gnu11 -Wall -Werror -pthread -o "$T/load" "$T/load.c" || rt_fail "cannot build the load client (is cc installed?)"

out=$("$RATCHET_BIN" token create --role agent --entity loadtest 2>/dev/null)
tok=$(sed -n 1p <<<"$out")
sed -n 2p <<<"$out" >"$T/tokens"
"$RATCHET_BIN" migrate >/dev/null
RATCHET_TOKENS=$T/tokens rt_serve_start a
rt_serve_wait_ready a
url=$(rt_serve_url a)
hostport=${url#http://}

set +e
res=$("$T/load" "${hostport%:*}" "${hostport##*:}" "$CLIENTS" "$SECONDS_" "$tok" "ld" 2>"$T/load.err")
rc=$?
set -e
echo "load: $res"
[[ -s $T/load.err ]] && head -20 "$T/load.err" >&2
((rc == 0)) || rt_fail "load client reported errors: $res"
ok=$(sed -E 's/.* ok=([0-9]+) .*/\1/' <<<"$res")
stored=$(rt_psql "select count(*) from ratchet.events where id like 'ld-%'")
rt_assert_eq "$ok" "$stored" "events answered 200 vs events stored"
rt_assert_eq "$stored" "$(rt_psql "select count(*) from ratchet.events where id like 'ld-%' and transport = 'api' and envelope->>'entity_id' = 'loadtest'")" "every stored event is the agent's"
((ok > 0)) || rt_fail "no request succeeded"
if grep -E ' (error|warn) ' "$T/a.log" | grep -q .; then
  grep -E ' (error|warn) ' "$T/a.log" | head -20 >&2
  rt_fail "warnings or errors in the serve log under load"
fi

# SIGTERM in the middle of the same load: serve stops promptly with exit 0 (requests
# waiting for their batch are finished or refused, never left hanging), and every event
# that was answered 200 is stored.
"$T/load" "${hostport%:*}" "${hostport##*:}" "$CLIENTS" 30 "$tok" "st" "$T/acked" >"$T/load2.out" 2>/dev/null &
load_pid=$!
# In the middle of the load: once its first events are stored (however long a loaded
# machine takes to get there).
rt_wait_for 60 '[ "$(rt_psql "select count(*) from ratchet.events where id like '"'st-%'"'")" -gt 0 ]'
t0=$(rt__now_ms)
rt_serve_stop a
echo "serve stopped $(($(rt__now_ms) - t0)) ms after SIGTERM under load"
wait "$load_pid" || true # its requests after the stop fail, as they should
echo "load during the stop: $(cat "$T/load2.out")"
n_acked=$(wc -l <"$T/acked")
((n_acked > 0)) || rt_fail "no request succeeded before the stop"
rt_psql "create table acked (id text primary key)"
rt_psql "\\copy acked from '$T/acked'"
rt_assert_eq "$n_acked" "$(rt_psql "select count(*) from acked")" "acked ids loaded"
rt_assert_eq 0 "$(rt_psql "select count(*) from acked a where not exists (select 1 from ratchet.events e where e.id = a.id)")" "events answered 200 before the stop but not stored"
rt_check_log "$T/a.log"
