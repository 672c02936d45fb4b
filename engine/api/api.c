/* api.c — the HTTP server: libmicrohttpd with a pool of RT_API_THREADS threads, routing,
 * request bodies (capped before they are read), bearer-token checks, JSON answers and the
 * PostgreSQL connection of each thread. The routes live in api_routes.c. */
#include "api.h"
#include "workflow_live.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api_ingest.h"
#include "api_routes.h"
#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
#define JANITOR_TICK_MS 250
#define API_SLOTS (RT_API_THREADS + 2)

struct rt_api {
    const rt_config *cfg;
    const rt_workflow_set *set;
    rt_tokens *tokens; /* NULL: no authentication (loopback only); swapped by a reload */
    pthread_rwlock_t tokens_lock;
    bool auth;         /* started with tokens (fixed for the API's life) */
    atomic_bool stopping; /* refusals while stopping are expected: not logged as warnings */
    struct MHD_Daemon *mhd;
    rt_api_batcher *batcher; /* group commit for POST /api/v1/events */
    int fd;
    char addr[96];

    /* Open connections and since when each waits for a complete request, so that the
     * janitor can cut one that dribbles its headers (slowloris): MHD's own timeout is
     * for idleness only, which a byte every few seconds never reaches. */
    pthread_mutex_t conn_mu;
    struct conn_watch *conns;
    pthread_t janitor;
    bool janitor_started;
    pthread_cond_t janitor_cv;
    bool janitor_stop; /* under conn_mu */

    /* One database connection per MHD thread, opened on its first use. */
    pthread_mutex_t mu;
    struct {
        bool taken;
        pthread_t owner;
        rt_store *st;
    } slots[API_SLOTS];
};

/* One connection (MHD's socket context), in rt_api.conns under conn_mu. */
typedef struct conn_watch {
    MHD_socket fd;
    int64_t since_ms;  /* accepted, or its last request completed */
    bool receiving;    /* a request is still being received (headers or body) */
    bool cut;          /* the janitor shut it down */
    struct conn_watch *prev, *next;
} conn_watch;

/* One request: what MHD keeps for us between the calls of on_request. */
typedef struct req_ctx {
    rt_api_req r;
    const rt_api_route *route;
    char *segs;       /* path copy the params point into */
    char *body;
    size_t len, cap, limit;
    bool too_large;
    bool started;     /* headers seen, checks done */
    bool dispatched;  /* the handler ran */
    bool answered;
    rt_api_handler finish;  /* a deferred answer, once resumed */
    rt_api_ingest_job job;
    atomic_bool job_done;   /* set by the batcher before it resumes the connection */
    int64_t t0_us;
    char log_path[160];
} req_ctx;

/* ------------------------------------------------------------------------------------
 * Addresses
 * ------------------------------------------------------------------------------------ */

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

rt_status rt_api_parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, bool *loopback,
                            rt_error *err)
{
    char host[256];
    const char *port;
    if (!addr || !*addr)
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_HTTP_ADDR is empty (expected host:port)");
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':' || (size_t)(close - addr - 1) >= sizeof host)
            return rt_error_set(err, RT_ERR_INVALID, "RATCHET_HTTP_ADDR=%.100s: expected [v6 address]:port", addr);
        memcpy(host, addr + 1, (size_t)(close - addr - 1));
        host[close - addr - 1] = '\0';
        port = close + 2;
    } else {
        const char *colon = strrchr(addr, ':');
        if (!colon || (size_t)(colon - addr) >= sizeof host || memchr(addr, ':', (size_t)(colon - addr)))
            return rt_error_set(err, RT_ERR_INVALID,
                                "RATCHET_HTTP_ADDR=%.100s: expected host:port (e.g. 127.0.0.1:8288, [::1]:8288)",
                                addr);
        memcpy(host, addr, (size_t)(colon - addr));
        host[colon - addr] = '\0';
        port = colon + 1;
    }
    char *end;
    errno = 0;
    long p = strtol(port, &end, 10);
    if (!*port || *end || errno || p < 0 || p > 65535)
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_HTTP_ADDR=%.100s: port must be 0..65535", addr);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc != 0 || !res)
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_HTTP_ADDR=%.100s: %s", addr, gai_strerror(rc));
    /* "localhost" may give ::1 and 127.0.0.1: take IPv4 first, as the default does. */
    struct addrinfo *pick = res;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            pick = a;
            break;
        }
    }
    memcpy(ss, pick->ai_addr, pick->ai_addrlen);
    *len = pick->ai_addrlen;
    *loopback = is_loopback(pick->ai_addr);
    freeaddrinfo(res);
    return RT_OK;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%d", host, port);
    } else {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(buf, len, "[%s]:%d", host, port);
    }
}

/* Address, loopback rule and tokens file: what rt_api_check promises. */
static rt_status check_settings(const rt_config *cfg, struct sockaddr_storage *ss, socklen_t *len,
                                rt_tokens **tokens, rt_error *err)
{
    bool loopback = false;
    rt_status s = rt_api_parse_addr(cfg->http_addr, ss, len, &loopback, err);
    if (s != RT_OK)
        return s;
    if (cfg->http_request_timeout_ms < 1000 || cfg->http_idle_timeout_ms < 1000)
        return rt_error_set(err, RT_ERR_INVALID, "%s must be at least 1s",
                            cfg->http_request_timeout_ms < 1000 ? "RATCHET_HTTP_REQUEST_TIMEOUT"
                                                                 : "RATCHET_HTTP_IDLE_TIMEOUT");
    if (cfg->http_max_connections < RT_API_THREADS)
        return rt_error_set(err, RT_ERR_INVALID, "RATCHET_HTTP_MAX_CONNECTIONS must be at least %d (one per thread)",
                            RT_API_THREADS);
    const char *path = cfg->tokens_file;
    *tokens = NULL;
    if (path && *path) {
        s = rt_tokens_load(path, tokens, err);
        if (s != RT_OK) {
            if (err && s != RT_ERR_NOMEM)
                err->code = RT_ERR_INVALID; /* a missing or unreadable file is a setting's fault */
            return s == RT_ERR_NOMEM ? s : RT_ERR_INVALID;
        }
        if (rt_tokens_count(*tokens) == 0) {
            rt_tokens_free(*tokens);
            *tokens = NULL;
            return rt_error_set(err, RT_ERR_INVALID,
                                "RATCHET_TOKENS=%s lists no token: add one with `ratchet token create --role admin`",
                                path);
        }
        return RT_OK;
    }
    if (!loopback)
        return rt_error_set(err, RT_ERR_INVALID,
                            "RATCHET_HTTP_ADDR=%s is not a loopback address and RATCHET_TOKENS is not set: "
                            "without tokens the API listens on 127.0.0.1 or ::1 only",
                            cfg->http_addr);
    return RT_OK;
}

rt_status rt_api_check(const rt_config *cfg, rt_error *err)
{
    struct sockaddr_storage ss;
    socklen_t len;
    rt_tokens *tokens = NULL;
    rt_status s = check_settings(cfg, &ss, &len, &tokens, err);
    rt_tokens_free(tokens);
    return s;
}

/* ------------------------------------------------------------------------------------
 * Database connections: one per thread
 * ------------------------------------------------------------------------------------ */

rt_store *rt_api_store_get(rt_api_req *r, rt_error *err)
{
    /* Each MHD thread keeps its own connection: store_schedules.c remembers per thread
     * which statements a connection has prepared, so a connection must not change threads. */
    rt_api *api = r->api;
    pthread_t self = pthread_self();
    int i = -1;
    pthread_mutex_lock(&api->mu);
    for (int k = 0; k < API_SLOTS && i < 0; k++)
        if (api->slots[k].taken && pthread_equal(api->slots[k].owner, self))
            i = k;
    for (int k = 0; k < API_SLOTS && i < 0; k++) {
        if (!api->slots[k].taken) {
            api->slots[k].taken = true;
            api->slots[k].owner = self;
            i = k;
        }
    }
    pthread_mutex_unlock(&api->mu);
    if (i < 0) {
        rt_error_set(err, RT_ERR_UNAVAILABLE, "no database connection slot for this thread");
        return NULL;
    }
    rt_store **st = &api->slots[i].st;
    rt_status s = RT_OK;
    if (!*st)
        s = rt_store_open(api->cfg->database_url, st, err);
    else if (!rt_store_healthy(*st))
        s = rt_store_reconnect(*st, err);
    if (s == RT_OK)
        return *st;
    rt_metrics_gauge_set("ratchet_db_up", 0);
    return NULL;
}

void rt_api_store_put(rt_api_req *r, rt_store *st)
{
    (void)r;
    (void)st; /* the connection stays with its thread */
}

/* ------------------------------------------------------------------------------------
 * Answers
 * ------------------------------------------------------------------------------------ */

static const char *code_for(int status)
{
    switch (status) {
    case 400: return "bad_request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 409: return "conflict";
    case 413: return "payload_too_large";
    case 501: return "not_implemented";
    case 503: return "unavailable";
    default: return status >= 500 ? "internal" : "error";
    }
}

static void clear_answer(rt_api_req *r)
{
    json_decref(r->json);
    r->json = NULL;
    free(r->text);
    r->text = NULL;
}

void rt_api_reply_json(rt_api_req *r, int status, json_t *json)
{
    clear_answer(r);
    r->status = status;
    r->json = json ? json : json_null();
}

void rt_api_reply_text(rt_api_req *r, int status, const char *content_type, char *text)
{
    clear_answer(r);
    r->status = status;
    r->text = text;
    r->content_type = content_type;
}

static void reply_error_v(rt_api_req *r, int status, json_t *extra, const char *fmt, va_list ap)
{
    char msg[RT_ERROR_MAX + 200];
    vsnprintf(msg, sizeof msg, fmt, ap);
    json_t *e = json_pack("{s:s, s:o}", "code", code_for(status), "message", rt_json_text(msg, strlen(msg)));
    if (extra) {
        json_object_update(e, extra);
        json_decref(extra);
    }
    rt_api_reply_json(r, status, json_pack("{s:o}", "error", e));
    if (status == 400)
        rt_metrics_counter_add("ratchet_bad_input_total", "kind", "api", 1);
}

void rt_api_reply_error(rt_api_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, NULL, fmt, ap);
    va_end(ap);
}

void rt_api_reply_error_with(rt_api_req *r, int status, json_t *extra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reply_error_v(r, status, extra, fmt, ap);
    va_end(ap);
}

void rt_api_reply_status(rt_api_req *r, const rt_error *err)
{
    int status;
    switch (err->code) {
    case RT_ERR_NOT_FOUND: status = 404; break;
    case RT_ERR_INVALID: status = 400; break;
    case RT_ERR_CONFLICT: status = 409; break;
    case RT_ERR_UNAVAILABLE:
    case RT_ERR_TIMEOUT: status = 503; break;
    default: status = 500; break;
    }
    if (status == 503 && atomic_load(&r->api->stopping))
        rt_log(RT_LOG_DEBUG, NULL, "api: %s %s: %s", r->method, r->safe_path, err->msg);
    else if (status == 503) /* the database went away: expected, and brief */
        rt_log(RT_LOG_WARN, NULL, "api: %s %s: %s", r->method, r->safe_path, err->msg);
    else if (status >= 500)
        rt_log(RT_LOG_ERROR, NULL, "api: %s %s: %s", r->method, r->safe_path, err->msg);
    rt_api_reply_error(r, status, "%s", err->msg);
}

void rt_api_refuse(rt_api_req *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char msg[RT_ERROR_MAX];
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    rt_store *st = rt_api_store_get(r, &(rt_error){0});
    rt_auth_refused(st, r->auth_enabled ? &r->who : NULL, r->method, r->safe_path, status, msg);
    rt_api_store_put(r, st);
    rt_api_reply_error(r, status, "%s", msg);
}

/* ------------------------------------------------------------------------------------
 * Query strings
 * ------------------------------------------------------------------------------------ */

const char *rt_api_query(rt_api_req *r, const char *key)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
    return v && *v ? v : NULL;
}

const char *rt_api_header(rt_api_req *r, const char *name)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
    return v && *v ? v : NULL;
}

typedef struct query_check {
    const char *const *allowed;
    const char *bad;
} query_check;

static enum MHD_Result check_key(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)value;
    query_check *q = cls;
    for (size_t i = 0; q->allowed[i]; i++)
        if (!strcmp(key, q->allowed[i]))
            return MHD_YES;
    q->bad = key;
    return MHD_NO;
}

bool rt_api_query_only(rt_api_req *r, const char *const *allowed)
{
    query_check q = {.allowed = allowed};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, check_key, &q);
    if (!q.bad)
        return true;
    char known[256] = "";
    size_t off = 0;
    for (size_t i = 0; allowed[i] && off < sizeof known; i++)
        off += (size_t)snprintf(known + off, sizeof known - off, "%s%s", i ? ", " : "", allowed[i]);
    rt_api_reply_error(r, 400, "unknown query parameter \"%.60s\" (known: %s)", q.bad, allowed[0] ? known : "none");
    return false;
}

/* ------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------ */

/* Matches path against pattern; on success the {} segments are copied into c->segs. */
static bool match(const char *pattern, const char *path, req_ctx *c)
{
    const char *p = pattern, *u = path;
    const char *starts[RT_API_MAX_PARAMS];
    size_t lens[RT_API_MAX_PARAMS];
    int n = 0;
    while (*p && *u) {
        if (p[0] == '{' && p[1] == '}') {
            const char *e = strchr(u, '/');
            size_t l = e ? (size_t)(e - u) : strlen(u);
            if (l == 0 || n == RT_API_MAX_PARAMS)
                return false;
            starts[n] = u;
            lens[n++] = l;
            u += l;
            p += 2;
            continue;
        }
        if (*p != *u)
            return false;
        p++;
        u++;
    }
    if (*p || *u)
        return false;
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += lens[i] + 1;
    free(c->segs);
    c->segs = malloc(total ? total : 1);
    if (!c->segs)
        return false;
    char *o = c->segs;
    for (int i = 0; i < n; i++) {
        memcpy(o, starts[i], lens[i]);
        o[lens[i]] = '\0';
        c->r.params[i] = o;
        o += lens[i] + 1;
    }
    return true;
}

/* Finds the route; 404 or 405 (with Allow) answered when there is none. */
static const rt_api_route *route_for(req_ctx *c)
{
    size_t n;
    const rt_api_route *routes = rt_api_routes(&n);
    static const char *const allow_get = "GET", *const allow_post = "POST", *const allow_both = "GET, POST";
    bool get = false, post = false;
    for (size_t i = 0; i < n; i++) {
        if (!match(routes[i].pattern, c->r.path, c))
            continue;
        bool is_get = !strcmp(routes[i].method, "GET");
        if (!strcmp(routes[i].method, c->r.method) || (is_get && !strcmp(c->r.method, "HEAD")))
            return &routes[i];
        get |= is_get;
        post |= !is_get;
    }
    if (get || post) {
        c->r.allow = get && post ? allow_both : get ? allow_get : allow_post;
        rt_api_reply_error(&c->r, 405, "%s is not allowed on %s (allowed: %s)", c->r.method, c->log_path,
                           c->r.allow);
    } else {
        rt_api_reply_error(&c->r, 404, "no such route: %s %s", c->r.method, c->log_path);
    }
    return NULL;
}

static void refused_401(rt_api_req *r, const char *why)
{
    rt_auth_refused(NULL, NULL, r->method, r->safe_path, 401, why); /* logged only: no identity */
}

/* Fills c->r.who from the Authorization header; false after answering 401 or 403. */
static bool authenticate(rt_api *api, req_ctx *c)
{
    rt_api_req *r = &c->r;
    if (!api->auth) {
        r->who.role = RT_ROLE_ADMIN;
        snprintf(r->who.label, sizeof r->who.label, "local");
    } else {
        const char *h = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
        const char *tok = NULL;
        if (h && !strncasecmp(h, "Bearer ", 7)) {
            tok = h + 7;
            while (*tok == ' ')
                tok++;
        }
        if (!tok || !*tok) {
            refused_401(r, "no bearer token");
            rt_api_reply_error(r, 401, "this route needs a token: send \"Authorization: Bearer <token>\"");
            return false;
        }
        size_t len = strlen(tok);
        while (len > 0 && tok[len - 1] == ' ')
            len--;
        pthread_rwlock_rdlock(&api->tokens_lock);
        bool known = rt_tokens_lookup(api->tokens, tok, len, &r->who);
        pthread_rwlock_unlock(&api->tokens_lock);
        if (!known) {
            refused_401(r, "unknown token");
            rt_api_reply_error(r, 401, "unknown token");
            return false;
        }
    }
    if (!(c->route->roles & r->who.role)) {
        rt_api_refuse(r, 403, "role %s may not %s %s", rt_role_name(r->who.role), r->method, c->log_path);
        return false;
    }
    return true;
}

/* Printable, bounded copy of the path for logs and messages. */
static void safe_copy(char *dst, size_t len, const char *src)
{
    size_t i = 0;
    for (; src[i] && i + 1 < len; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch < 0x20 || ch >= 0x7f || ch == '"' || ch == '\\' ? '?' : (char)ch;
    }
    dst[i] = '\0';
}

/* The request on conn is in (or answered before its body): the deadline no longer runs. */
static void request_received(rt_api *api, struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_watch *w = ci ? ci->socket_context : NULL;
    if (!w)
        return;
    pthread_mutex_lock(&api->conn_mu);
    w->receiving = false;
    pthread_mutex_unlock(&api->conn_mu);
}

static enum MHD_Result send_answer(rt_api *api, struct MHD_Connection *conn, req_ctx *c)
{
    request_received(api, conn);
    rt_api_req *r = &c->r;
    char *body = NULL;
    size_t len = 0;
    const char *ctype = "application/json";
    if (r->text) {
        body = r->text;
        r->text = NULL;
        len = strlen(body);
        ctype = r->content_type;
    } else {
        if (!r->json)
            rt_api_reply_error(r, 500, "the handler gave no answer");
        body = json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!body) {
            body = strdup("{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}");
            r->status = 500;
        }
        len = body ? strlen(body) : 0;
        if (body) {
            char *nl = realloc(body, len + 2);
            if (nl) {
                body = nl;
                body[len++] = '\n';
                body[len] = '\0';
            }
        }
    }
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    /* No page may frame ours (the dashboard's buttons must not be clicked through an
     * invisible frame), and no answer is sniffed into another type. */
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Content-Security-Policy", "frame-ancestors 'none'");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->location[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, r->location);
    if (r->allow)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->status == 401)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"ratchet\"");
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    c->answered = true;
    int64_t us = rt_mono_us() - c->t0_us;
    if (r->status >= 500 && !atomic_load(&api->stopping))
        rt_log(RT_LOG_WARN, NULL, "api: %s %s -> %d (%.1f ms)", r->method, c->log_path, r->status, us / 1000.0);
    else
        rt_log(RT_LOG_DEBUG, NULL, "api: %s %s -> %d (%.1f ms)", r->method, c->log_path, r->status, us / 1000.0);
    return ok;
}

/* The host part of "host", "host:port", "[v6]" or "[v6]:port" into out. */
static void host_only(const char *hostport, char *out, size_t len)
{
    const char *end;
    if (hostport[0] == '[') {
        hostport++;
        end = strchr(hostport, ']');
    } else {
        end = strchr(hostport, ':');
    }
    size_t n = end ? (size_t)(end - hostport) : strlen(hostport);
    snprintf(out, len, "%.*s", (int)(n < len ? n : len - 1), hostport);
}

/* "localhost" or a literal loopback address: 127.0.0.0/8, ::1, ::ffff:127.x.y.z. A name
 * that merely starts with "127." is not one (127.evil.example can point anywhere). */
static bool loopback_name(const char *host)
{
    size_t n = strlen(host);
    if (n > 0 && host[n - 1] == '.')
        n--; /* "localhost." is the same name */
    if (n == 9 && !strncasecmp(host, "localhost", 9))
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6) || (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
    return false;
}

/* What a browser may not make us do. A page on another site can send a POST to this
 * address (a form, or fetch without CORS): browsers mark it with an Origin header, which
 * must then name this very host. Without tokens every caller is admin, so a page that
 * rebinds its own DNS name to 127.0.0.1 must not be answered either: the Host header has
 * to be a loopback name or address (webhooks excepted: they are signed). Clients that are not browsers (curl, brokers' webhooks) send
 * neither header that could fail. NULL when the request may go on. */
static const char *browser_refusal(rt_api *api, struct MHD_Connection *conn, const char *method, const char *url)
{
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    char h[256];
    /* Webhooks prove themselves by signature, and may come through a tunnel that keeps
     * its public Host. */
    bool hook = !strncmp(url, "/hooks/", 7);
    if (!api->auth && host && !hook) {
        host_only(host, h, sizeof h);
        if (!loopback_name(h))
            return "the Host header is not a loopback name, and this API has no tokens (RATCHET_TOKENS)";
    }
    if (!strcmp(method, "GET") || !strcmp(method, "HEAD"))
        return NULL;
    const char *origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return NULL;
    const char *rest = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
    if (!rest || !host || strcasecmp(rest, host) != 0)
        return "cross-origin request refused: Origin does not name this server";
    return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size,
                                  void **con_cls)
{
    (void)version;
    rt_api *api = cls;
    req_ctx *c = *con_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        *con_cls = c;
        c->t0_us = rt_mono_us();
        c->r.cfg = api->cfg;
        c->r.set = rt_workflow_set_acquire(api->set); /* this request's workflows (released on completion) */
        c->r.api = api;
        c->r.conn = conn;
        c->r.method = method;
        c->r.path = url;
        c->r.auth_enabled = api->auth;
        safe_copy(c->log_path, sizeof c->log_path, url);
        c->r.safe_path = c->log_path;
        /* Route, token and declared size are checked before any body is read: a refused
         * request's body is never buffered (MHD drops it and closes the connection). */
        const char *refusal = browser_refusal(api, conn, method, url);
        if (refusal) {
            rt_metrics_counter_add("ratchet_bad_input_total", "kind", "api", 1);
            rt_log(RT_LOG_WARN, NULL, "api: %s %s refused: %s", method, c->log_path, refusal);
            rt_api_reply_error(&c->r, 403, "%s", refusal);
            return send_answer(api, conn, c);
        }
        c->route = route_for(c);
        if (!c->route || (c->route->roles && !authenticate(api, c)))
            return send_answer(api, conn, c);
        c->limit = c->route->event_body ? (size_t)api->cfg->max_event_bytes : RT_API_BODY_MAX;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > c->limit) {
            rt_api_reply_error(&c->r, 413, "request body of %s bytes is over the %zu-byte limit", cl, c->limit);
            return send_answer(api, conn, c);
        }
        c->started = true;
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_large || c->len + n > c->limit) {
            c->too_large = true; /* keep reading (and dropping) to answer 413 at the end */
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = c->cap ? c->cap : 4096;
            while (cap < c->len + n + 1)
                cap *= 2;
            char *b = realloc(c->body, cap);
            if (!b)
                return MHD_NO;
            c->body = b;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload_data, n);
        c->len += n;
        c->body[c->len] = '\0';
        return MHD_YES;
    }
    if (c->answered)
        return MHD_YES;
    if (c->finish) {
        if (!atomic_load(&c->job_done))
            return MHD_YES; /* not resumed by the batcher: keep waiting */
        rt_api_handler fn = c->finish;
        c->finish = NULL;
        fn(&c->r);
        return send_answer(api, conn, c);
    }
    if (c->dispatched)
        return MHD_YES; /* suspended, waiting for its answer */
    if (c->too_large) {
        rt_api_reply_error(&c->r, 413, "request body is over the %zu-byte limit", c->limit);
        return send_answer(api, conn, c);
    }
    c->r.body = c->body ? c->body : "";
    c->r.body_len = c->len;
    c->dispatched = true;
    request_received(api, conn);
    c->route->fn(&c->r);
    if (c->finish)
        return MHD_YES; /* deferred: rt_api_ingest_deferred suspended the connection */
    return send_answer(api, conn, c);
}

/* A batcher thread: the events are committed (or failed); let MHD call us again. */
static void ingest_done(void *arg)
{
    req_ctx *c = arg;
    c->r.async_status = c->job.status;
    if (c->job.status != RT_OK)
        c->r.async_err = c->job.err;
    atomic_store(&c->job_done, true);
    MHD_resume_connection(c->r.conn);
}

void rt_api_ingest_deferred(rt_api_req *r, rt_event *const *events, size_t n, rt_ingest_result *results,
                            rt_api_handler finish)
{
    req_ctx *c = (req_ctx *)r; /* r is the first member */
    c->finish = finish;
    c->job = (rt_api_ingest_job){.events = events, .n = n, .results = results, .transport = r->transport,
                                 .done = ingest_done, .arg = c};
    /* Suspended before it is queued, so that a resume can never come first. */
    MHD_suspend_connection(r->conn);
    rt_api_batcher_submit(r->api->batcher, &c->job);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    rt_api *api = cls;
    /* A kept-alive connection has the same time for its next request. */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_watch *w = ci ? ci->socket_context : NULL;
    if (w) {
        pthread_mutex_lock(&api->conn_mu);
        w->since_ms = rt_mono_ms();
        w->receiving = true;
        pthread_mutex_unlock(&api->conn_mu);
    }
    req_ctx *c = *con_cls;
    if (!c)
        return;
    if (c->r.state_free)
        c->r.state_free(c->r.state);
    rt_workflow_set_release(c->r.set);
    json_decref(c->r.json);
    free(c->r.text);
    free(c->segs);
    free(c->body);
    free(c);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    rt_api *api = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        conn_watch *w = ci ? calloc(1, sizeof *w) : NULL;
        if (!w)
            return; /* not watched: MHD's idle timeout still applies */
        w->fd = ci->connect_fd;
        w->since_ms = rt_mono_ms();
        w->receiving = true;
        pthread_mutex_lock(&api->conn_mu);
        w->next = api->conns;
        if (api->conns)
            api->conns->prev = w;
        api->conns = w;
        pthread_mutex_unlock(&api->conn_mu);
        *socket_context = w;
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        /* MHD closes the socket after this returns: once unlinked, the janitor can no
         * longer touch the descriptor (which the kernel may then reuse). */
        conn_watch *w = *socket_context;
        pthread_mutex_lock(&api->conn_mu);
        if (w->prev)
            w->prev->next = w->next;
        else
            api->conns = w->next;
        if (w->next)
            w->next->prev = w->prev;
        pthread_mutex_unlock(&api->conn_mu);
        free(w);
        *socket_context = NULL;
    }
}

/* Cuts (shutdown: MHD then sees the end of the stream and closes it) every connection
 * that has not delivered a complete request within RATCHET_HTTP_REQUEST_TIMEOUT of being
 * accepted or of its previous answer. */
static void *janitor_main(void *arg)
{
    rt_api *api = arg;
    int64_t limit = api->cfg->http_request_timeout_ms;
    pthread_mutex_lock(&api->conn_mu);
    while (!api->janitor_stop) {
        int64_t now = rt_mono_ms();
        int cut = 0;
        for (conn_watch *w = api->conns; w; w = w->next) {
            if (w->receiving && !w->cut && now - w->since_ms > limit) {
                shutdown(w->fd, SHUT_RDWR);
                w->cut = true;
                cut++;
            }
        }
        if (cut) {
            rt_metrics_counter_add("ratchet_bad_input_total", "kind", "api", cut);
            char d[32];
            rt_duration_format(limit, d, sizeof d);
            rt_log(RT_LOG_WARN, NULL,
                   "http: closed %d connection(s) that sent no complete request within %s "
                   "(RATCHET_HTTP_REQUEST_TIMEOUT)",
                   cut, d);
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += JANITOR_TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&api->janitor_cv, &api->conn_mu, &until);
    }
    pthread_mutex_unlock(&api->conn_mu);
    return NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    rt_log(RT_LOG_WARN, NULL, "http: %s", msg);
}

/* ------------------------------------------------------------------------------------
 * Start and stop
 * ------------------------------------------------------------------------------------ */

rt_status rt_api_start(const rt_config *cfg, const rt_workflow_set *set, rt_api **out, rt_error *err)
{
    *out = NULL;
    struct sockaddr_storage ss;
    socklen_t len = 0;
    rt_tokens *tokens = NULL;
    rt_status s = check_settings(cfg, &ss, &len, &tokens, err);
    if (s != RT_OK)
        return s;
    rt_api *api = calloc(1, sizeof *api);
    if (!api) {
        rt_tokens_free(tokens);
        return rt_error_set(err, RT_ERR_NOMEM, "out of memory");
    }
    api->cfg = cfg;
    api->set = set;
    api->tokens = tokens;
    api->auth = tokens != NULL;
    pthread_rwlock_init(&api->tokens_lock, NULL);
    struct stat sb;
    const char *tpath = cfg->tokens_file;
    if (tokens && tpath && stat(tpath, &sb) == 0 && (sb.st_mode & 022))
        rt_log(RT_LOG_WARN, NULL, "%s is writable by others (mode %03o): whoever can write it can add a token; "
               "chmod go-w it", tpath, (unsigned)(sb.st_mode & 0777));
    api->fd = -1;
    pthread_mutex_init(&api->mu, NULL);
    pthread_mutex_init(&api->conn_mu, NULL);
    pthread_cond_init(&api->janitor_cv, NULL);

    api->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (api->fd < 0 || setsockopt(api->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(api->fd, (struct sockaddr *)&ss, len) != 0 || listen(api->fd, LISTEN_BACKLOG) != 0) {
        s = rt_error_set(err, RT_ERR_UNAVAILABLE, "cannot listen on %s: %s", cfg->http_addr, strerror(errno));
        rt_api_stop(api);
        return s;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(api->fd, (struct sockaddr *)&bound, &blen) == 0)
        format_addr(&bound, api->addr, sizeof api->addr);
    else
        snprintf(api->addr, sizeof api->addr, "%s", cfg->http_addr);

    if (rt_api_batcher_start(cfg, set, &api->batcher, err) != RT_OK) {
        s = err->code;
        rt_api_stop(api);
        return s;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                     MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    api->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, api,
                                MHD_OPTION_EXTERNAL_LOGGER, mhd_log, api, /* first, or MHD warns */
                                MHD_OPTION_LISTEN_SOCKET, (MHD_socket)api->fd,
                                MHD_OPTION_THREAD_POOL_SIZE, (unsigned)RT_API_THREADS,
                                MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)((cfg->http_idle_timeout_ms + 999) / 1000),
                                MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
                                MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections_per_ip,
                                MHD_OPTION_NOTIFY_COMPLETED, on_completed, api,
                                MHD_OPTION_NOTIFY_CONNECTION, on_connection, api,
                                MHD_OPTION_END);
    if (!api->mhd) {
        s = rt_error_set(err, RT_ERR_INTERNAL, "cannot start the HTTP server on %s", api->addr);
        rt_api_stop(api);
        return s;
    }
    api->fd = -1; /* MHD owns and closes it now */
    if (pthread_create(&api->janitor, NULL, janitor_main, api) != 0) {
        s = rt_error_set(err, RT_ERR_INTERNAL, "cannot start the HTTP connection janitor thread");
        rt_api_stop(api);
        return s;
    }
    api->janitor_started = true;
    if (tokens)
        rt_log(RT_LOG_INFO, NULL, "API on http://%s (%zu token(s) from %s)", api->addr, rt_tokens_count(tokens),
               cfg->tokens_file);
    else
        rt_log(RT_LOG_WARN, NULL,
               "API without authentication on %s only: http://%s (set RATCHET_TOKENS to require tokens)",
               ss.ss_family == AF_INET6 ? "::1" : "127.0.0.1", api->addr);
    *out = api;
    return RT_OK;
}

void rt_api_stop(rt_api *api)
{
    if (!api)
        return;
    if (api->janitor_started) {
        pthread_mutex_lock(&api->conn_mu);
        api->janitor_stop = true;
        pthread_cond_signal(&api->janitor_cv);
        pthread_mutex_unlock(&api->conn_mu);
        pthread_join(api->janitor, NULL);
    }
    if (api->mhd) {
        /* No new connections; then every queued ingest finishes and resumes its request
         * (MHD must not stop with suspended connections); then MHD ends its threads. */
        atomic_store(&api->stopping, true);
        MHD_socket fd = MHD_quiesce_daemon(api->mhd);
        rt_api_batcher_stop(api->batcher);
        MHD_stop_daemon(api->mhd); /* joins its threads: no handler runs after this */
        if (fd != MHD_INVALID_SOCKET)
            close(fd);
    }
    rt_api_batcher_free(api->batcher);
    if (api->fd >= 0)
        close(api->fd);
    for (int i = 0; i < API_SLOTS; i++)
        rt_store_close(api->slots[i].st);
    rt_tokens_free(api->tokens);
    pthread_rwlock_destroy(&api->tokens_lock);
    pthread_mutex_destroy(&api->mu);
    pthread_mutex_destroy(&api->conn_mu);
    pthread_cond_destroy(&api->janitor_cv);
    free(api);
}

rt_status rt_api_reload_tokens(rt_api *api, rt_error *err)
{
    if (!api || !api->auth)
        return RT_OK; /* started without tokens: loopback only until a restart */
    const char *path = api->cfg->tokens_file;
    rt_tokens *fresh = NULL;
    rt_status s = path && *path ? rt_tokens_load(path, &fresh, err)
                                : rt_error_set(err, RT_ERR_INVALID, "RATCHET_TOKENS is not set any more");
    if (s == RT_OK && rt_tokens_count(fresh) == 0)
        s = rt_error_set(err, RT_ERR_INVALID, "RATCHET_TOKENS=%s lists no token", path);
    if (s != RT_OK) {
        rt_tokens_free(fresh);
        return s; /* the tokens in use stay */
    }
    pthread_rwlock_wrlock(&api->tokens_lock);
    rt_tokens *old = api->tokens;
    api->tokens = fresh;
    pthread_rwlock_unlock(&api->tokens_lock);
    rt_tokens_free(old);
    rt_log(RT_LOG_INFO, NULL, "API tokens reloaded: %zu token(s) from %s", rt_tokens_count(fresh), path);
    return RT_OK;
}

const char *rt_api_address(const rt_api *api)
{
    return api->addr;
}
