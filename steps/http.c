/* http.c — one HTTP(S) request per execution, through libcurl: 2xx succeeds; 408, 429,
 * 5xx, timeouts and connection errors are worth retrying; other statuses fail for good.
 * Sends Idempotency-Key: <run_id:step_id>, X-Ratchet-Fence: <fence> (the claim's fencing token)
 * and, when asked, an HMAC-SHA256 body signature or an AWS Signature V4 (libcurl's
 * CURLOPT_AWS_SIGV4, with x-amz-content-sha256 set here: curl 7.88 does not send it, S3 needs it).
 *
 * Where a request may go (docs/steps.md "http step: where requests may go"): every address curl
 * is about to connect to is checked in the open-socket callback — after resolution, so a
 * name that resolves differently a second time (DNS rebinding) gains nothing. Link-local
 * and cloud metadata addresses are never reached; the engine's own API only by a URL
 * written literally in the workflow (or with RATCHET_HTTP_STEP_ALLOW_ENGINE_API).
 * Redirects are followed here, not by curl, so that a hop to another origin goes without
 * the workflow's headers and signature.
 *
 * Header values and the URL may carry credentials, so neither ever goes into an error
 * message; curl's own error text names at most the host. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "curl_once.h"
#include "step.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 30000
#define DEFAULT_MAX_RESPONSE ((size_t)16 << 20)
#define MAX_MAX_RESPONSE ((size_t)1 << 30)
#define EXCERPT_BYTES 512
#define MAX_REDIRECTS 10
#define DEFAULT_HMAC_HEADER "X-Ratchet-Signature"

struct opts {
    char method[8];
    const char *url;
    json_t *headers;       /* object or NULL */
    json_t *body;          /* any JSON or NULL (absent) */
    int64_t timeout_ms;
    const char *timeout_str;
    const char *hmac_secret; /* NULL: no signature */
    size_t hmac_secret_len;
    const char *hmac_header;
    bool follow_redirects;
    size_t max_response;
    struct {
        bool on;
        const char *region, *service, *access_key, *secret_key; /* NULL: a template, at load time */
    } sigv4;
};

/* ---- validation, shared by load time (templates skipped) and run time ---------------- */

static bool user_header_set(const json_t *headers, const char *name);

static bool valid_header_name(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("!#$%&'*+-.^_`|~", c)))
            return false;
    }
    return true;
}

static bool valid_header_value(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    }
    return true;
}

static rt_status check_url(const char *url, rt_error *err)
{
    return rt_curl_check_url(url, "http", "a valid absolute URL", "http", "https", NULL, err);
}

static rt_status parse_hmac(json_t *h, bool rendered, struct opts *o, rt_error *err)
{
    if (!json_is_object(h))
        return rt_error_set(err, RT_ERR_INVALID, "http \"hmac\" must be an object {secret, header, algorithm}");
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (strcmp(key, "secret") != 0 && strcmp(key, "header") != 0 && strcmp(key, "algorithm") != 0)
            return rt_error_set(err, RT_ERR_INVALID, "http \"hmac\" has unknown key \"%s\"", key);
    }
    json_t *secret = json_object_get(h, "secret");
    if (!secret)
        return rt_error_set(err, RT_ERR_INVALID, "http \"hmac\" needs \"secret\"");
    if (!rt_step_is_template(secret, rendered)) {
        if (!json_is_string(secret) || json_string_length(secret) == 0)
            return rt_error_set(err, RT_ERR_INVALID, "http \"hmac.secret\" must be a non-empty string");
        o->hmac_secret = json_string_value(secret);
        o->hmac_secret_len = json_string_length(secret);
    }
    o->hmac_header = DEFAULT_HMAC_HEADER;
    if ((v = json_object_get(h, "header")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || !valid_header_name(json_string_value(v)))
            return rt_error_set(err, RT_ERR_INVALID, "http \"hmac.header\" must be a header name");
        o->hmac_header = json_string_value(v);
    }
    if ((v = json_object_get(h, "algorithm")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_string(v) || strcasecmp(json_string_value(v), "sha256") != 0)
            return rt_error_set(err, RT_ERR_INVALID, "http \"hmac.algorithm\" must be \"sha256\"");
    }
    return RT_OK;
}

/* A region or service name: goes into curl's "aws:amz:REGION:SERVICE" and the credential scope. */
static bool valid_scope_word(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return false;
    }
    return n > 0 && n <= 64;
}

/* aws_sigv4: {region, service, access_key, secret_key}, all required. The keys are never
 * quoted back in a message: they come from secrets. */
static rt_status parse_sigv4(json_t *a, bool rendered, struct opts *o, rt_error *err)
{
    if (!json_is_object(a))
        return rt_error_set(err, RT_ERR_INVALID,
                            "http \"aws_sigv4\" must be an object {region, service, access_key, secret_key}");
    static const char *const keys[] = {"region", "service", "access_key", "secret_key", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(a, key, v) {
        size_t i = 0;
        while (keys[i] && strcmp(keys[i], key) != 0)
            i++;
        if (!keys[i])
            return rt_error_set(err, RT_ERR_INVALID, "http \"aws_sigv4\" has unknown key \"%s\"", key);
    }
    const char **slot[] = {&o->sigv4.region, &o->sigv4.service, &o->sigv4.access_key, &o->sigv4.secret_key};
    for (size_t i = 0; keys[i]; i++) {
        v = json_object_get(a, keys[i]);
        if (!v)
            return rt_error_set(err, RT_ERR_INVALID, "http \"aws_sigv4\" needs \"%s\"", keys[i]);
        if (rt_step_is_template(v, rendered))
            continue;
        if (!json_is_string(v) || json_string_length(v) == 0)
            return rt_error_set(err, RT_ERR_INVALID, "http \"aws_sigv4.%s\" must be a non-empty string%s", keys[i],
                                rendered && json_is_null(v) ? " (it rendered as null: is the secret set?)" : "");
        const char *text = json_string_value(v);
        if (i < 2 && !valid_scope_word(text))
            return rt_error_set(err, RT_ERR_INVALID,
                                "http \"aws_sigv4.%s\" must be letters, digits, - and _ (at most 64), like \"%s\"",
                                keys[i], i == 0 ? "us-east-1" : "s3");
        if (i == 2 && !valid_header_value(text, json_string_length(v)))
            return rt_error_set(err, RT_ERR_INVALID, "http \"aws_sigv4.access_key\" has a line break or NUL");
        if (i == 3 && strlen(text) != json_string_length(v))
            return rt_error_set(err, RT_ERR_INVALID, "http \"aws_sigv4.secret_key\" has a NUL");
        *slot[i] = text;
    }
    o->sigv4.on = true;
    return RT_OK;
}

/* Fills o from `with`. At load time (rendered == false) strings holding ${{ }} are taken
 * on trust; at run time every value is checked, because a template may render anything. */
/* "headers": name: scalar, valid names, no line break or NUL in a value. */
static rt_status parse_headers(json_t *v, bool rendered, rt_error *err)
{
    if (!json_is_object(v))
        return rt_error_set(err, RT_ERR_INVALID, "http \"headers\" must be an object of name: value");
    const char *name;
    json_t *val;
    json_object_foreach(v, name, val) {
        if (!valid_header_name(name))
            return rt_error_set(err, RT_ERR_INVALID, "http \"headers\": \"%s\" is not a valid header name", name);
        if (!json_is_string(val) && !json_is_number(val) && !json_is_boolean(val))
            return rt_error_set(err, RT_ERR_INVALID, "http header \"%s\" must be a string, number or boolean", name);
        /* The value itself is never quoted back: it may be a credential. */
        if (json_is_string(val) && !rt_step_is_template(val, rendered) &&
            !valid_header_value(json_string_value(val), json_string_length(val)))
            return rt_error_set(err, RT_ERR_INVALID, "http header \"%s\" has a line break or NUL in its value", name);
    }
    return RT_OK;
}

static rt_status parse_with(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    memset(o, 0, sizeof *o);
    strcpy(o->method, "GET");
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    o->max_response = DEFAULT_MAX_RESPONSE;
    if (!json_is_object(with))
        return rt_error_set(err, RT_ERR_INVALID, "http needs \"with\" as an object");

    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        static const char *const known[] = {"method", "url", "headers", "body", "timeout", "hmac", "aws_sigv4",
                                            "follow_redirects", "max_response_bytes", NULL};
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i])
            return rt_error_set(err, RT_ERR_INVALID, "http has unknown key \"%s\"", key);
    }

    if ((v = json_object_get(with, "method")) && !rt_step_is_template(v, rendered)) {
        static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};
        const char *m = json_string_value(v);
        size_t i = 0;
        while (m && methods[i] && strcasecmp(methods[i], m) != 0)
            i++;
        if (!m || !methods[i])
            return rt_error_set(err, RT_ERR_INVALID,
                                "http \"method\" must be GET, POST, PUT, PATCH, DELETE or HEAD");
        strcpy(o->method, methods[i]);
    }

    v = json_object_get(with, "url");
    if (!v)
        return rt_error_set(err, RT_ERR_INVALID, "http needs \"url\"");
    if (!rt_step_is_template(v, rendered)) {
        if (!json_is_string(v))
            return rt_error_set(err, RT_ERR_INVALID, "http \"url\" must be a string");
        if (check_url(json_string_value(v), err) != RT_OK)
            return err->code;
        o->url = json_string_value(v);
    }

    if ((v = json_object_get(with, "headers")) && !rt_step_is_template(v, rendered)) {
        if (parse_headers(v, rendered, err) != RT_OK)
            return err->code;
        o->headers = v;
    }

    o->body = json_object_get(with, "body");
    if (json_is_null(o->body))
        o->body = NULL;

    if (rt_step_duration_option(with, "timeout", rendered, "http", &o->timeout_ms, &o->timeout_str,
                                err) != RT_OK)
        return err->code;

    if ((v = json_object_get(with, "hmac")) && !rt_step_is_template(v, rendered)) {
        if (parse_hmac(v, rendered, o, err) != RT_OK)
            return err->code;
    }

    if ((v = json_object_get(with, "aws_sigv4")) && !rt_step_is_template(v, rendered)) {
        if (parse_sigv4(v, rendered, o, err) != RT_OK)
            return err->code;
        if (o->headers && user_header_set(o->headers, "Authorization"))
            return rt_error_set(err, RT_ERR_INVALID,
                                "http \"headers\" sets Authorization, which \"aws_sigv4\" computes: remove one");
    }

    if ((v = json_object_get(with, "follow_redirects")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_boolean(v))
            return rt_error_set(err, RT_ERR_INVALID, "http \"follow_redirects\" must be true or false");
        o->follow_redirects = json_is_true(v);
    }

    if ((v = json_object_get(with, "max_response_bytes")) && !rt_step_is_template(v, rendered)) {
        if (!json_is_integer(v) || json_integer_value(v) <= 0 ||
            (size_t)json_integer_value(v) > MAX_MAX_RESPONSE)
            return rt_error_set(err, RT_ERR_INVALID,
                                "http \"max_response_bytes\" must be a positive integer (at most %zu)",
                                MAX_MAX_RESPONSE);
        o->max_response = (size_t)json_integer_value(v);
    }
    return RT_OK;
}

static rt_status validate(json_t *with, rt_error *err)
{
    struct opts o;
    return parse_with(with, false, &o, err);
}

/* ---- the transfer -------------------------------------------------------------------- */

/* ---- where a request may go ----------------------------------------------------------- */

/* An address as 16 bytes (IPv4 as ::ffff:a.b.c.d) and its port. */
typedef struct peer {
    unsigned char ip[16];
    unsigned port;
} peer;

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static bool peer_from_sockaddr(const struct sockaddr *sa, peer *p)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        memcpy(p->ip, v4_mapped, 12);
        memcpy(p->ip + 12, &s4->sin_addr, 4);
        p->port = ntohs(s4->sin_port);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        memcpy(p->ip, &s6->sin6_addr, 16);
        p->port = ntohs(s6->sin6_port);
        return true;
    }
    return false;
}

static bool is_v4(const peer *p)
{
    return !memcmp(p->ip, v4_mapped, 12);
}

/* Does p's address lie in prefix/bits (prefix: 16 bytes, IPv4 ones written mapped)? */
static bool in_prefix(const peer *p, const unsigned char *prefix, int bits)
{
    int full = bits / 8, rest = bits % 8;
    if (memcmp(p->ip, prefix, (size_t)full) != 0)
        return false;
    return !rest || ((p->ip[full] ^ prefix[full]) & (0xff << (8 - rest))) == 0;
}

/* Never reached, whatever the workflow says: link-local (where clouds serve instance
 * metadata and credentials: 169.254.169.254, fd00:ec2::254, Alibaba's 100.100.100.200) and
 * the unspecified addresses, which Linux connects to the machine itself. Names the range,
 * or NULL. */
static const char *forbidden_range(const peer *p)
{
    static const struct {
        unsigned char prefix[16];
        int bits;
        const char *name;
    } ranges[] = {
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 169, 254}, 96 + 16, "link-local / cloud metadata (169.254.0.0/16)"},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 100, 100, 100, 200}, 128, "cloud metadata (100.100.100.200)"},
        {{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0}, 96 + 8, "unspecified (0.0.0.0/8)"},
        {{0xfe, 0x80}, 10, "link-local (fe80::/10)"},
        {{0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54}, 128, "cloud metadata (fd00:ec2::254)"},
        {{0}, 128, "unspecified (::)"},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++)
        if (in_prefix(p, ranges[i].prefix, ranges[i].bits))
            return ranges[i].name;
    return NULL;
}

static bool is_loopback(const peer *p)
{
    static const unsigned char lo4[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127};
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return in_prefix(p, lo4, 96 + 8) || in_prefix(p, lo6, 128);
}

/* One of this machine's own interface addresses? */
static bool is_local_interface(const peer *p)
{
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) != 0)
        return true; /* unknown: assume the worst */
    bool found = false;
    for (struct ifaddrs *i = ifs; i && !found; i = i->ifa_next) {
        peer q;
        if (i->ifa_addr && peer_from_sockaddr(i->ifa_addr, &q))
            found = !memcmp(q.ip, p->ip, 16);
    }
    freeifaddrs(ifs);
    return found;
}

/* Is p the engine's own HTTP API (api_addr "host:port", "[v6]:port")? Same port, and an
 * address the API listens on: its own, or when it listens on a wildcard or loopback
 * address, any loopback or local interface address. */
static bool is_engine_api(const peer *p, const char *api_addr)
{
    if (!api_addr)
        return false;
    const char *colon = strrchr(api_addr, ':');
    if (!colon || (unsigned)atoi(colon + 1) != p->port)
        return false;
    if (is_loopback(p))
        return true;
    char host[256];
    size_t hl = (size_t)(colon - api_addr);
    if (hl >= sizeof host)
        return true;
    memcpy(host, api_addr, hl);
    host[hl] = '\0';
    char *h = host;
    if (*h == '[' && hl >= 2 && h[hl - 1] == ']') {
        h[hl - 1] = '\0';
        h++;
    }
    if (!*h || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !strcmp(h, "*"))
        return is_local_interface(p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(h, NULL, &hints, &res) != 0)
        return is_local_interface(p);
    bool same = false;
    for (struct addrinfo *a = res; a && !same; a = a->ai_next) {
        peer q;
        if (peer_from_sockaddr(a->ai_addr, &q))
            same = !memcmp(q.ip, p->ip, 16) || (is_loopback(&q) && is_local_interface(p));
    }
    freeaddrinfo(res);
    return same;
}

typedef struct guard {
    const char *api_addr;   /* NULL: nothing to protect */
    bool allow_engine_api;  /* this hop may reach the engine's own API */
    char refused[160];      /* why the last connection was refused ("" = none) */
} guard;

static void peer_text(const peer *p, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (is_v4(p))
        inet_ntop(AF_INET, p->ip + 12, ip, sizeof ip);
    else
        inet_ntop(AF_INET6, p->ip, ip, sizeof ip);
    snprintf(buf, len, is_v4(p) ? "%s:%u" : "[%s]:%u", ip, p->port);
}

/* curl's open-socket callback: the one place every connection passes, with the address
 * already resolved. */
static curl_socket_t open_checked_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    guard *g = ud;
    peer p;
    if (purpose != CURLSOCKTYPE_IPCXN || !peer_from_sockaddr(&a->addr, &p)) {
        snprintf(g->refused, sizeof g->refused, "an address of family %d", a->family);
        return CURL_SOCKET_BAD;
    }
    char where[64];
    const char *range = forbidden_range(&p);
    if (range) {
        peer_text(&p, where, sizeof where);
        snprintf(g->refused, sizeof g->refused, "%s, a %s address", where, range);
        return CURL_SOCKET_BAD;
    }
    if (!g->allow_engine_api && is_engine_api(&p, g->api_addr)) {
        peer_text(&p, where, sizeof where);
        snprintf(g->refused, sizeof g->refused, "%s, the engine's own API", where);
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

/* Was `url` written literally in the workflow (no ${{ }} anywhere on its way)? */
static bool url_is_literal(const json_t *raw_with)
{
    const json_t *u = json_object_get(raw_with, "url");
    return json_is_string(u) && !rt_step_is_template(u, false);
}

/* scheme, host and port (the default one when absent) of url; false when it does not parse. */
static bool origin_of(const char *url, char *buf, size_t len)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    bool ok = u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
              curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK;
    if (ok) {
        for (char *c = host; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        for (char *c = scheme; *c; c++)
            *c = (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c);
        snprintf(buf, len, "%s://%s:%s", scheme, host, port);
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return ok;
}

struct transfer {
    char *body;
    size_t len, cap, max;
    bool over_limit;
    json_t *headers;       /* lowercased name -> value, of the last response */
    char reason[64];       /* the status line's reason phrase (HTTP/1.x only) */
    volatile sig_atomic_t *cancelled;
    bool was_cancelled;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n;
    if (t->len + len > t->max) {
        t->over_limit = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (t->len + len + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 16384;
        while (cap < t->len + len + 1)
            cap *= 2;
        char *b = realloc(t->body, cap);
        if (!b)
            return 0;
        t->body = b;
        t->cap = cap;
    }
    memcpy(t->body + t->len, p, len);
    t->len += len;
    return len;
}

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' ' || **s == '\t')) {
        (*s)++;
        (*len)--;
    }
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r' ||
                    (*s)[*len - 1] == '\n'))
        (*len)--;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or a 100 Continue): forget the last one. */
        json_object_clear(t->headers);
        t->reason[0] = '\0';
        const char *sp = memchr(p, ' ', len);
        const char *sp2 = sp ? memchr(sp + 1, ' ', len - (size_t)(sp + 1 - p)) : NULL;
        if (sp2) {
            const char *r = sp2 + 1;
            size_t rl = len - (size_t)(r - p);
            trim(&r, &rl);
            snprintf(t->reason, sizeof t->reason, "%.*s", (int)rl, r);
        }
        return len;
    }
    const char *colon = memchr(p, ':', len);
    if (!colon || colon == p)
        return len; /* the blank line that ends the headers, or junk */
    size_t nl = (size_t)(colon - p);
    char name[256];
    if (nl >= sizeof name)
        return len;
    for (size_t i = 0; i < nl; i++)
        name[i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
    name[nl] = '\0';
    const char *val = colon + 1;
    size_t vl = len - nl - 1;
    trim(&val, &vl);
    json_t *old = json_object_get(t->headers, name);
    if (json_is_string(old)) {
        /* Repeated headers are combined as RFC 9110 §5.3 allows. */
        size_t ol = json_string_length(old);
        char *joined = malloc(ol + 2 + vl);
        if (joined) {
            memcpy(joined, json_string_value(old), ol);
            memcpy(joined + ol, ", ", 2);
            memcpy(joined + ol + 2, val, vl);
            json_t *j = rt_json_text(joined, ol + 2 + vl);
            if (j)
                json_object_set_new(t->headers, name, j);
            free(joined);
        }
    } else {
        json_t *j = rt_json_text(val, vl);
        if (j)
            json_object_set_new(t->headers, name, j);
    }
    return len;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct transfer *t = ud;
    if (t->cancelled && *t->cancelled) {
        t->was_cancelled = true;
        return 1; /* aborts with CURLE_ABORTED_BY_CALLBACK */
    }
    return 0;
}

static const char *reason_phrase(long status)
{
    switch (status) {
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "";
    }
}

static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    size_t len = strcspn(ct, ";");
    while (len && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    if (len == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return len > 5 && strncasecmp(ct + len - 5, "+json", 5) == 0; /* application/problem+json */
}

/* Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static int64_t retry_after_ms(const char *v)
{
    if (!v || !*v)
        return 0;
    char *end;
    long long secs = strtoll(v, &end, 10);
    if (end != v && *end == '\0' && secs >= 0)
        return secs > INT64_MAX / 1000 ? INT64_MAX : secs * 1000;
    time_t at = curl_getdate(v, NULL);
    time_t now = time(NULL);
    return at > now ? (int64_t)(at - now) * 1000 : 0;
}

static bool user_header_set(const json_t *headers, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)headers, k, v) {
        if (strcasecmp(k, name) == 0)
            return true;
    }
    return false;
}

/* Appends "Name: value" (curl's "Name;" for an empty value). */
static bool add_header(struct curl_slist **list, const char *name, const char *value)
{
    char *line = NULL;
    int r = *value ? asprintf(&line, "%s: %s", name, value) : asprintf(&line, "%s;", name);
    if (r < 0)
        return false;
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (!l)
        return false;
    *list = l;
    return true;
}

/* Appends curl's "Name:" (do not send the header curl would add), except under SigV4:
 * curl 7.88 signs such an entry as an empty header it then does not send, and the
 * signature no longer matches. */
static bool suppress_header(struct curl_slist **list, const char *entry, bool sign_v4)
{
    if (sign_v4)
        return true;
    struct curl_slist *l = curl_slist_append(*list, entry);
    if (!l)
        return false;
    *list = l;
    return true;
}

/* x-amz-content-sha256: the hex SHA-256 of the payload, which S3 requires with SigV4 and
 * curl signs with the other headers. */
static bool add_content_sha256(struct curl_slist **list, const char *body, size_t body_len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    if (!EVP_Digest(body ? body : "", body_len, md, &md_len, EVP_sha256(), NULL))
        return false;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return add_header(list, "x-amz-content-sha256", hex);
}

/* foreign: the request goes to another origin than the workflow's URL (a redirect took
 * it there): the workflow's own headers and the signatures stay home. */
static bool build_headers(const struct opts *o, const rt_step_ctx *ctx, const char *body,
                          size_t body_len, bool body_is_json, bool foreign, struct curl_slist **list)
{
    bool sign_v4 = o->sigv4.on && !foreign;
    const char *name;
    json_t *v;
    json_t *headers = foreign ? NULL : o->headers;
    json_object_foreach(headers, name, v) {
        if (o->hmac_secret && strcasecmp(name, o->hmac_header) == 0)
            continue; /* the signature we compute takes the header's place */
        char num[64];
        const char *val = rt_json_scalar_text(v, num, sizeof num);
        if (!add_header(list, name, val))
            return false;
    }
    bool has_ct = user_header_set(headers, "Content-Type");
    if (body && !has_ct &&
        !add_header(list, "Content-Type", body_is_json ? "application/json" : "text/plain; charset=utf-8"))
        return false;
    /* Without a body curl would still announce a form; say nothing instead. */
    if (!body && !has_ct && !suppress_header(list, "Content-Type:", sign_v4))
        return false;
    if (ctx->step_key && !user_header_set(headers, "Idempotency-Key") &&
        !add_header(list, "Idempotency-Key", ctx->step_key))
        return false;
    /* W3C Trace Context: the callee's spans join the run's trace (docs/observability.md) */
    if (ctx->traceparent && !user_header_set(headers, "traceparent") &&
        !add_header(list, "traceparent", ctx->traceparent))
        return false;
    char fence[32];
    snprintf(fence, sizeof fence, "%lld", (long long)ctx->fence);
    if (ctx->fence > 0 && !user_header_set(headers, "X-Ratchet-Fence") &&
        !add_header(list, "X-Ratchet-Fence", fence))
        return false;
    if (o->hmac_secret && !foreign) {
        unsigned char mac[EVP_MAX_MD_SIZE];
        unsigned int mac_len = 0;
        if (!HMAC(EVP_sha256(), o->hmac_secret, (int)o->hmac_secret_len,
                  (const unsigned char *)(body ? body : ""), body_len, mac, &mac_len))
            return false;
        char sig[7 + 2 * EVP_MAX_MD_SIZE + 1] = "sha256=";
        for (unsigned i = 0; i < mac_len; i++)
            snprintf(sig + 7 + 2 * i, 3, "%02x", mac[i]);
        if (!add_header(list, o->hmac_header, sig))
            return false;
    }
    if (sign_v4 && !user_header_set(headers, "x-amz-content-sha256") &&
        !add_content_sha256(list, body, body_len))
        return false;
    /* No "Expect: 100-continue" round trip: many servers ignore it and it costs a second. */
    return suppress_header(list, "Expect:", sign_v4);
}

static json_t *parse_body(const struct transfer *t)
{
    if (t->len == 0)
        return json_null();
    json_t *ct = json_object_get(t->headers, "content-type");
    if (is_json_type(json_string_value(ct))) {
        json_t *j = json_loadb(t->body, t->len, JSON_DECODE_ANY, NULL);
        if (j)
            return j;
    }
    return rt_json_text(t->body, t->len);
}

static json_t *body_excerpt(const struct transfer *t)
{
    size_t n = t->len < EXCERPT_BYTES ? t->len : EXCERPT_BYTES;
    while (n < t->len && n > 0 && ((unsigned char)t->body[n] & 0xC0) == 0x80)
        n--; /* end on a character boundary */
    return rt_json_text(t->body ? t->body : "", n);
}

static bool retriable_curl_error(CURLcode rc)
{
    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_FILESIZE_EXCEEDED:
    case CURLE_REMOTE_ACCESS_DENIED:
        return false;
    default:
        return true; /* connection, DNS, TLS handshake, resets: another attempt may get through */
    }
}

static void classify_response(long status, struct transfer *t, json_t *output, rt_step_result *res)
{
    if ((status >= 200 && status < 300) || status == 304) {
        res->outcome = RT_STEP_OK;
        res->output = json_incref(output);
        return;
    }
    bool retriable = status >= 500 || status == 408 || status == 429;
    json_t *excerpt = body_excerpt(t);
    const char *reason = t->reason[0] ? t->reason : reason_phrase(status);
    const char *ex = json_string_value(excerpt) ? json_string_value(excerpt) : "";
    rt_step_fail(res, retriable, "http: HTTP %ld%s%s%s%s%s", status, *reason ? " " : "", reason,
                 *ex ? ": " : "", ex,
                 status >= 300 && status < 400 ? " (follow_redirects is off)" : "");
    res->error_detail = json_pack("{s:i,s:o*}", "status", (int)status, "body", excerpt);
    if (status == 429 || status == 503)
        res->retry_after_ms = retry_after_ms(json_string_value(json_object_get(t->headers, "retry-after")));
}

static bool is_redirect(long status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

/* The method of the next hop, as browsers and curl do it: 303 turns anything but HEAD into
 * GET, 301 and 302 turn POST into GET, 307 and 308 keep method and body. */
static const char *redirected_method(long status, const char *method)
{
    if (status == 303 && strcmp(method, "HEAD") != 0)
        return "GET";
    if ((status == 301 || status == 302) && !strcmp(method, "POST"))
        return "GET";
    return method;
}

static void set_method(CURL *h, const char *method, const char *body, size_t body_len)
{
    bool sends_body = body || !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
    curl_easy_setopt(h, CURLOPT_HTTPGET, 1L); /* back to a plain GET, then what this hop needs */
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, NULL);
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (!strcmp(method, "POST"))
        curl_easy_setopt(h, CURLOPT_POST, 1L);
    else if (strcmp(method, "GET") != 0 || body)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (sends_body && strcmp(method, "HEAD") != 0) {
        /* POST/PUT/PATCH without a body still say Content-Length: 0. */
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
}

/* AWS Signature V4 by curl for a hop to the workflow's own origin; none for another. */
static bool set_sigv4(CURL *h, const struct opts *o, bool home)
{
    if (!o->sigv4.on)
        return true;
    if (!home) {
        curl_easy_setopt(h, CURLOPT_AWS_SIGV4, NULL);
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, NULL);
        curl_easy_setopt(h, CURLOPT_PASSWORD, NULL);
        return true;
    }
    char provider[160];
    snprintf(provider, sizeof provider, "aws:amz:%s:%s", o->sigv4.region, o->sigv4.service);
    return curl_easy_setopt(h, CURLOPT_AWS_SIGV4, provider) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_USERNAME, o->sigv4.access_key) == CURLE_OK &&
           curl_easy_setopt(h, CURLOPT_PASSWORD, o->sigv4.secret_key) == CURLE_OK;
}

/* One request with its redirects: what execute() sets up, performs and frees. */
struct request {
    const struct opts *o;
    rt_step_ctx *ctx;
    CURL *h;
    struct transfer t;
    guard g;
    struct curl_slist *hdrs;
    char errbuf[CURL_ERROR_SIZE];
    char *url, home[600]; /* the URL of this hop; the origin of the first */
    const char *method;
    bool foreign; /* another origin has been reached */
    const char *body;
    char *body_owned;
    size_t body_len;
    bool body_is_json;
    int64_t timeout;
    bool timeout_from_deadline;
    long status;
};

/* The request's timeout: the step's, or what is left of the step deadline when that is
 * sooner. false after recording the failure in res (the deadline has passed). */
static bool request_timeout(struct request *q, rt_step_result *res)
{
    q->timeout = q->o->timeout_ms;
    if (!q->ctx->deadline_mono_ms)
        return true;
    int64_t left = q->ctx->deadline_mono_ms - rt_mono_ms();
    if (left <= 0) {
        rt_step_fail(res, true, "http: timed out before the request was sent (step deadline)");
        return false;
    }
    if (left < q->timeout) {
        q->timeout = left;
        q->timeout_from_deadline = true;
    }
    return true;
}

/* Objects, arrays, numbers and booleans go as JSON; a string goes as it is. */
static void request_body(struct request *q)
{
    if (json_is_string(q->o->body)) {
        q->body = json_string_value(q->o->body);
        q->body_len = json_string_length(q->o->body);
    } else if (q->o->body) {
        q->body = q->body_owned = json_dumps(q->o->body, JSON_COMPACT | JSON_ENCODE_ANY);
        q->body_len = q->body ? strlen(q->body) : 0;
        q->body_is_json = true;
    }
}

static void setup_handle(struct request *q)
{
    CURL *h = q->h;
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* no SIGALRM: we run on worker threads */
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L); /* follow_redirects is done below */
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_checked_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &q->g);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "ratchet/" RATCHET_VERSION);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* whatever curl can decode */
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)q->o->max_response);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &q->t);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &q->t);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &q->t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, q->errbuf);
}

/* Sends one hop (headers and signature rebuilt for where it goes). false after recording
 * an out-of-memory failure in res; *rc is curl's result. */
static bool perform_hop(struct request *q, int64_t until, CURLcode *rc, rt_step_result *res)
{
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
    if (!build_headers(q->o, q->ctx, q->body, q->body_len, q->body_is_json, q->foreign, &q->hdrs) ||
        !set_sigv4(q->h, q->o, !q->foreign)) {
        rt_step_fail(res, true, "http: out of memory preparing the request");
        return false;
    }
    int64_t left = until - rt_mono_ms();
    curl_easy_setopt(q->h, CURLOPT_URL, q->url);
    curl_easy_setopt(q->h, CURLOPT_HTTPHEADER, q->hdrs);
    curl_easy_setopt(q->h, CURLOPT_TIMEOUT_MS, (long)(left > 1 ? left : 1));
    set_method(q->h, q->method, q->body, q->body_len);
    q->t.len = 0;
    q->g.refused[0] = '\0';
    *rc = curl_easy_perform(q->h);
    return true;
}

/* Points the request at the redirect's target next. false after recording why it cannot
 * be followed in res. */
static bool follow_redirect(struct request *q, const char *next, int hop, rt_step_result *res)
{
    if (hop == MAX_REDIRECTS) {
        rt_step_fail(res, false, "http: more than %d redirects", MAX_REDIRECTS);
        return false;
    }
    char there[600];
    rt_error uerr;
    if (check_url(next, &uerr) != RT_OK || !origin_of(next, there, sizeof there)) {
        rt_step_fail(res, false, "http: HTTP %ld redirects to a URL that cannot be followed (%s)", q->status,
                     check_url(next, &uerr) != RT_OK ? uerr.msg : "does not parse");
        return false;
    }
    /* Once another origin has been reached, nothing of the workflow's goes along any
     * more, and no hop is "written in the workflow". */
    q->foreign = q->foreign || strcmp(there, q->home) != 0;
    q->g.allow_engine_api = q->ctx->env && q->ctx->env->http_allow_engine_api;
    q->method = redirected_method(q->status, q->method);
    if (strcmp(q->method, q->o->method) != 0)
        q->body = NULL, q->body_len = 0;
    char *copy = strdup(next);
    if (!copy) {
        rt_step_fail(res, true, "http: out of memory following a redirect");
        return false;
    }
    free(q->url);
    q->url = copy;
    return true;
}

/* A transfer that failed: why, in words a workflow author can act on. */
static void fail_transfer(const struct request *q, CURLcode rc, rt_step_result *res)
{
    char dur[32];
    if (q->t.was_cancelled || rc == CURLE_ABORTED_BY_CALLBACK) {
        rt_step_fail(res, true, "http: cancelled");
    } else if (q->g.refused[0] && rc == CURLE_COULDNT_CONNECT) {
        rt_step_fail(res, false, "http: refused to connect to %s (docs/steps.md \"http step: where requests may go\")",
                     q->g.refused);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        rt_duration_format(q->timeout, dur, sizeof dur);
        rt_step_fail(res, true, "http: timed out after %s%s",
                     q->timeout_from_deadline || !q->o->timeout_str ? dur : q->o->timeout_str,
                     q->timeout_from_deadline ? " (step deadline)" : "");
    } else if (q->t.over_limit || rc == CURLE_FILESIZE_EXCEEDED) {
        rt_step_fail(res, false, "http: response body exceeded max_response_bytes (%zu)", q->o->max_response);
    } else {
        rt_step_fail(res, retriable_curl_error(rc), "http: %s%s%s", curl_easy_strerror(rc), q->errbuf[0] ? ": " : "",
                     q->errbuf);
    }
    res->error_detail = json_pack("{s:i,s:s}", "curl_code", (int)rc, "curl_error", curl_easy_strerror(rc));
}

/* Sends the request, following redirects when asked, and records the response (or the
 * failure) in res. */
static void send_request(struct request *q, rt_step_result *res)
{
    int64_t until = rt_mono_ms() + q->timeout;
    CURLcode rc = CURLE_OK;
    for (int hop = 0;; hop++) {
        if (!perform_hop(q, until, &rc, res))
            return;
        if (rc != CURLE_OK)
            break;
        curl_easy_getinfo(q->h, CURLINFO_RESPONSE_CODE, &q->status);
        const char *next = NULL;
        if (!q->o->follow_redirects || !is_redirect(q->status) ||
            curl_easy_getinfo(q->h, CURLINFO_REDIRECT_URL, &next) != CURLE_OK || !next)
            break;
        if (!follow_redirect(q, next, hop, res))
            return;
    }
    if (rc != CURLE_OK) {
        fail_transfer(q, rc, res);
        return;
    }
    json_t *output = json_pack("{s:i,s:O,s:o*}", "status", (int)q->status, "headers", q->t.headers, "body",
                               parse_body(&q->t));
    if (!output) {
        rt_step_fail(res, true, "http: out of memory reading the response");
        return;
    }
    classify_response(q->status, &q->t, output, res);
    json_decref(output);
}

static void execute(rt_step_ctx *ctx, json_t *with, rt_step_result *res)
{
    struct opts o;
    rt_error err;
    if (parse_with(with, true, &o, &err) != RT_OK) {
        rt_step_fail(res, false, "%s", err.msg);
        return;
    }
    CURLcode init_rc = rt_curl_init();
    if (init_rc != CURLE_OK) {
        rt_step_fail(res, true, "http: libcurl failed to initialise: %s", curl_easy_strerror(init_rc));
        return;
    }
    struct request q = {.o = &o, .ctx = ctx, .method = o.method};
    if (!request_timeout(&q, res))
        return;
    request_body(&q);
    q.t = (struct transfer){.max = o.max_response, .headers = json_object(), .cancelled = ctx->cancelled};
    q.g = (guard){.api_addr = ctx->env ? ctx->env->http_addr : NULL,
                  .allow_engine_api = (ctx->env && ctx->env->http_allow_engine_api) || url_is_literal(ctx->raw_with)};
    q.h = curl_easy_init();
    q.url = strdup(o.url);
    if (!q.h || !q.t.headers || !q.url || (o.body && !q.body) || !origin_of(o.url, q.home, sizeof q.home)) {
        rt_step_fail(res, true, "http: out of memory preparing the request");
    } else {
        setup_handle(&q);
        send_request(&q, res);
    }
    free(q.url);
    json_decref(q.t.headers);
    free(q.t.body);
    curl_slist_free_all(q.hdrs);
    if (q.h)
        curl_easy_cleanup(q.h);
    free(q.body_owned);
}

const rt_step_type rt_step_http = {.name = "http", .validate = validate, .execute = execute};
