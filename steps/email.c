/* email.c — sends one message per execution over SMTP through libcurl: smtp:// with
 * STARTTLS (or none, when asked), smtps://, AUTH from `username`/`password` (secrets).
 *
 * The Message-ID comes from the step key (run id and step id), so every attempt of one
 * step sends the same Message-ID and a retried step is recognisable to the receiver.
 * Header fields are built here, never copied raw: a line break in one is refused (header
 * injection), non-ASCII text is RFC 2047-encoded. 5xx answers (recipient or login refused)
 * fail for good; connection errors, timeouts and 4xx answers are worth retrying.
 * Passwords never appear in a message; the server's last answer line may (it is the reason). */
#include <curl/curl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "curl_once.h"
#include "step.h"
#include "util.h"

#define DEFAULT_TIMEOUT_MS 30000
#define MAX_RECIPIENTS 100
#define MAX_ADDRESS 254

typedef enum { TLS_REQUIRED, TLS_STARTTLS, TLS_NONE } tls_mode;

struct opts {
    const char *url;
    bool smtps;
    tls_mode tls;
    const char *username, *password, *ca_file;
    const char *from, *subject, *text, *html;
    json_t *to, *cc; /* string or array, borrowed */
    int64_t timeout_ms;
    const char *timeout_str;
};

/* An address as written ("Ada <ada@example.com>" or "ada@example.com"), split. */
typedef struct mailbox {
    char name[256]; /* display name, "" when none */
    char addr[MAX_ADDRESS + 1];
} mailbox;

static bool has_line_break(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static bool is_ascii_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* local@domain, nothing that would need quoting or could break the envelope. */
static bool valid_addr(const char *a)
{
    const char *at = strrchr(a, '@');
    if (!at || at == a || !at[1] || strlen(a) > MAX_ADDRESS)
        return false;
    for (const char *p = a; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c >= 0x7f || strchr("<>()[]\\,;:\"", c))
            return false;
    }
    return true;
}

/* Parses one address. Messages name the field (`what`) but quote no value. */
static rt_status parse_mailbox(const char *s, const char *what, mailbox *m, rt_error *err)
{
    if (has_line_break(s))
        return rt_error_set(err, RT_ERR_INVALID, "email %s has a line break: header injection refused", what);
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    m->name[0] = '\0';
    const char *lt = memchr(s, '<', n);
    if (lt) {
        if (s[n - 1] != '>')
            return rt_error_set(err, RT_ERR_INVALID, "email %s: \"Name <address>\" must end with '>'", what);
        size_t al = (size_t)(s + n - 1 - (lt + 1));
        if (al > MAX_ADDRESS)
            return rt_error_set(err, RT_ERR_INVALID, "email %s: the address is longer than %d", what, MAX_ADDRESS);
        memcpy(m->addr, lt + 1, al);
        m->addr[al] = '\0';
        const char *ne = lt;
        while (ne > s && (ne[-1] == ' ' || ne[-1] == '\t'))
            ne--;
        const char *nb = s;
        if (ne - nb >= 2 && *nb == '"' && ne[-1] == '"')
            nb++, ne--;
        if ((size_t)(ne - nb) >= sizeof m->name)
            return rt_error_set(err, RT_ERR_INVALID, "email %s: the display name is longer than %zu bytes", what,
                                sizeof m->name - 1);
        memcpy(m->name, nb, (size_t)(ne - nb));
        m->name[ne - nb] = '\0';
    } else {
        if (n > MAX_ADDRESS)
            return rt_error_set(err, RT_ERR_INVALID, "email %s: the address is longer than %d", what, MAX_ADDRESS);
        memcpy(m->addr, s, n);
        m->addr[n] = '\0';
        if (memchr(m->addr, ',', n))
            return rt_error_set(err, RT_ERR_INVALID, "email %s holds a comma: give several recipients as a list", what);
    }
    if (!valid_addr(m->addr))
        return rt_error_set(err, RT_ERR_INVALID, "email %s is not an address like name@example.com", what);
    return RT_OK;
}

/* to/cc: a string or a list of strings. At load time templates are taken on trust. */
static rt_status check_recipients(json_t *v, const char *key, bool rendered, size_t *count, rt_error *err)
{
    char what[48];
    mailbox m;
    if (rt_step_is_template(v, rendered))
        return RT_OK;
    if (json_is_string(v)) {
        snprintf(what, sizeof what, "\"%s\"", key);
        *count += 1;
        return parse_mailbox(json_string_value(v), what, &m, err);
    }
    if (!json_is_array(v) || (json_array_size(v) == 0 && !strcmp(key, "to")))
        return rt_error_set(err, RT_ERR_INVALID, "email \"%s\" must be an address or a non-empty list of addresses", key);
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        snprintf(what, sizeof what, "\"%s\"[%zu]", key, i);
        if (rt_step_is_template(e, rendered))
            continue;
        if (!json_is_string(e))
            return rt_error_set(err, RT_ERR_INVALID, "email %s must be a string", what);
        if (parse_mailbox(json_string_value(e), what, &m, err) != RT_OK)
            return err->code;
        *count += 1;
    }
    return RT_OK;
}

static rt_status check_url(const char *url, struct opts *o, rt_error *err)
{
    return rt_curl_check_url(url, "email", "a valid URL like smtp://mail.example.com:587", "smtp", "smtps", &o->smtps,
                             err);
}

/* A string option: absent is fine; a template at load time is taken on trust. null_ok:
 * a template that rendered null counts as absent (ca_file, text, html). */
static rt_status string_option(json_t *with, const char *key, bool rendered, bool null_ok, const char **out,
                               rt_error *err)
{
    json_t *v = json_object_get(with, key);
    if (!v || rt_step_is_template(v, rendered) || (null_ok && json_is_null(v)))
        return RT_OK;
    if (!json_is_string(v))
        return rt_error_set(err, RT_ERR_INVALID, "email \"%s\" must be a string%s", key,
                            rendered && json_is_null(v) ? " (it rendered as null: is the secret or value set?)" : "");
    *out = json_string_value(v);
    return RT_OK;
}

/* Fills o from `with`. At load time (rendered == false) templates are taken on trust; at
 * run time every value is checked. */
static rt_status parse_with(json_t *with, bool rendered, struct opts *o, rt_error *err)
{
    memset(o, 0, sizeof *o);
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    if (!json_is_object(with))
        return rt_error_set(err, RT_ERR_INVALID, "email needs \"with\" as an object");
    static const char *const known[] = {"url", "tls", "ca_file", "username", "password", "from", "to", "cc",
                                        "subject", "text", "html", "timeout", NULL};
    const char *key;
    json_t *v;
    json_object_foreach(with, key, v) {
        size_t i = 0;
        while (known[i] && strcmp(known[i], key) != 0)
            i++;
        if (!known[i])
            return rt_error_set(err, RT_ERR_INVALID, "email has unknown key \"%s\"", key);
    }
    static const char *const required[] = {"url", "from", "to", "subject", NULL};
    for (size_t i = 0; required[i]; i++)
        if (!json_object_get(with, required[i]))
            return rt_error_set(err, RT_ERR_INVALID, "email needs \"%s\"", required[i]);
    if (!json_object_get(with, "text") && !json_object_get(with, "html"))
        return rt_error_set(err, RT_ERR_INVALID, "email needs \"text\" or \"html\" (or both)");

    if (string_option(with, "url", rendered, false, &o->url, err) != RT_OK)
        return err->code;
    if (o->url && check_url(o->url, o, err) != RT_OK)
        return err->code;
    const char *tls = NULL;
    if (string_option(with, "tls", rendered, false, &tls, err) != RT_OK)
        return err->code;
    if (tls) {
        if (!strcmp(tls, "required"))
            o->tls = TLS_REQUIRED;
        else if (!strcmp(tls, "starttls"))
            o->tls = TLS_STARTTLS;
        else if (!strcmp(tls, "none"))
            o->tls = TLS_NONE;
        else
            return rt_error_set(err, RT_ERR_INVALID, "email \"tls\" must be \"required\", \"starttls\" or \"none\"");
        if (o->url && o->smtps && o->tls != TLS_REQUIRED)
            return rt_error_set(err, RT_ERR_INVALID,
                                "email \"tls\": an smtps:// URL is TLS from the start; use \"required\" or smtp://");
    }
    if (string_option(with, "ca_file", rendered, true, &o->ca_file, err) != RT_OK ||
        string_option(with, "username", rendered, false, &o->username, err) != RT_OK ||
        string_option(with, "password", rendered, false, &o->password, err) != RT_OK ||
        string_option(with, "from", rendered, false, &o->from, err) != RT_OK ||
        string_option(with, "subject", rendered, false, &o->subject, err) != RT_OK ||
        string_option(with, "text", rendered, true, &o->text, err) != RT_OK ||
        string_option(with, "html", rendered, true, &o->html, err) != RT_OK)
        return err->code;
    if (rendered && !o->text && !o->html)
        return rt_error_set(err, RT_ERR_INVALID, "email needs \"text\" or \"html\" (both rendered as null)");
    if (json_object_get(with, "password") && !json_object_get(with, "username"))
        return rt_error_set(err, RT_ERR_INVALID, "email \"password\" needs \"username\"");
    if (o->username && (has_line_break(o->username) || !*o->username))
        return rt_error_set(err, RT_ERR_INVALID, "email \"username\" must be a non-empty line");
    mailbox m;
    if (o->from && parse_mailbox(o->from, "\"from\"", &m, err) != RT_OK)
        return err->code;
    if (o->subject && has_line_break(o->subject))
        return rt_error_set(err, RT_ERR_INVALID, "email \"subject\" has a line break: header injection refused");
    size_t n = 0;
    o->to = json_object_get(with, "to");
    o->cc = json_object_get(with, "cc");
    if (json_is_null(o->cc))
        o->cc = NULL; /* a template that found no cc */
    if (check_recipients(o->to, "to", rendered, &n, err) != RT_OK ||
        (o->cc && check_recipients(o->cc, "cc", rendered, &n, err) != RT_OK))
        return err->code;
    if (n > MAX_RECIPIENTS)
        return rt_error_set(err, RT_ERR_INVALID, "email has %zu recipients, at most %d", n, MAX_RECIPIENTS);
    return rt_step_duration_option(with, "timeout", rendered, "email", &o->timeout_ms, &o->timeout_str, err);
}

static rt_status validate(json_t *with, rt_error *err)
{
    struct opts o;
    return parse_with(with, false, &o, err);
}

/* ---- the message ---------------------------------------------------------------------- */

typedef struct buf {
    char *p;
    size_t len, cap;
    bool oom;
} buf;

static void put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = true;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(buf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void base64_chunk(buf *b, const unsigned char *s, size_t n)
{
    char out[4 * ((76 / 4 * 3 + 2) / 3) + 1];
    EVP_EncodeBlock((unsigned char *)out, s, (int)n);
    puts_(b, out);
}

/* RFC 2047 encoded words (UTF-8, base64) for text that is not plain printable ASCII, at
 * most 45 bytes of text each (a 75-character word), split between characters, folded. */
static void put_encoded_words(buf *b, const char *s)
{
    size_t n = strlen(s);
    if (is_ascii_printable(s) && n <= 900) {
        put(b, s, n);
        return;
    }
    size_t i = 0;
    bool first = true;
    while (i < n) {
        size_t take = 0;
        while (i + take < n) {
            size_t l = rt_utf8_seq_len((const unsigned char *)s + i + take, n - i - take);
            if (!l)
                l = 1;
            if (take + l > 45)
                break;
            take += l;
        }
        puts_(b, first ? "=?UTF-8?B?" : "\r\n =?UTF-8?B?");
        base64_chunk(b, (const unsigned char *)s + i, take);
        puts_(b, "?=");
        i += take;
        first = false;
    }
}

static void put_mailbox(buf *b, const mailbox *m)
{
    if (m->name[0]) {
        if (is_ascii_printable(m->name)) {
            puts_(b, "\"");
            for (const char *c = m->name; *c; c++) {
                if (*c == '"' || *c == '\\')
                    puts_(b, "\\");
                put(b, c, 1);
            }
            puts_(b, "\"");
        } else {
            put_encoded_words(b, m->name);
        }
        puts_(b, " <");
        puts_(b, m->addr);
        puts_(b, ">");
    } else {
        puts_(b, m->addr);
    }
}

/* "To: a, b" and the envelope recipients, from a string or a list (already checked). */
static rt_status put_recipients(buf *b, const char *field, json_t *v, struct curl_slist **rcpt, json_t *out,
                                rt_error *err)
{
    json_t *list = json_is_string(v) ? json_pack("[O]", v) : json_incref(v);
    if (!list)
        return rt_error_set(err, RT_ERR_NOMEM, "email: out of memory");
    puts_(b, field);
    puts_(b, ": ");
    size_t i;
    json_t *e;
    rt_status st = RT_OK;
    json_array_foreach(list, i, e) {
        mailbox m;
        char what[48];
        snprintf(what, sizeof what, "\"%s\"[%zu]", field[0] == 'T' ? "to" : "cc", i);
        if (!json_is_string(e)) {
            st = rt_error_set(err, RT_ERR_INVALID, "email %s must be a string", what);
            break;
        }
        if ((st = parse_mailbox(json_string_value(e), what, &m, err)) != RT_OK)
            break;
        if (i)
            puts_(b, ",\r\n ");
        put_mailbox(b, &m);
        char env[MAX_ADDRESS + 3];
        snprintf(env, sizeof env, "<%s>", m.addr);
        struct curl_slist *l = curl_slist_append(*rcpt, env);
        if (!l || json_array_append_new(out, json_string(m.addr)) != 0) {
            st = rt_error_set(err, RT_ERR_NOMEM, "email: out of memory");
            break;
        }
        *rcpt = l;
    }
    puts_(b, "\r\n");
    json_decref(list);
    return st;
}

/* RFC 5322 date, in English whatever the locale. */
static void put_date(buf *b)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char line[64];
    snprintf(line, sizeof line, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    puts_(b, line);
}

/* <ratchet.RUN.STEP@domain-of-from>: the step key's characters that are not atext become '.'. */
static void message_id(const rt_step_ctx *ctx, const mailbox *from, char *out, size_t len)
{
    char key[300];
    snprintf(key, sizeof key, "%s", ctx->step_key ? ctx->step_key : "unkeyed");
    for (char *c = key; *c; c++) {
        unsigned char u = (unsigned char)*c;
        bool atext = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') ||
                     strchr("!#$%&'*+-/=?^_`{|}~", u);
        if (!atext || !u)
            *c = '.';
    }
    const char *domain = strrchr(from->addr, '@') + 1;
    snprintf(out, len, "<ratchet.%s@%s>", key, domain);
}

static bool needs_base64(const char *s)
{
    size_t line = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c >= 0x80 || (c < 0x20 && c != '\n' && c != '\r' && c != '\t'))
            return true;
        line = c == '\n' ? 0 : line + 1;
        if (line > 900)
            return true;
    }
    return false;
}

/* One body part's headers and content: 7bit with CRLF line ends when that is possible,
 * else base64 in 76-character lines. */
static void put_part(buf *b, const char *type, const char *content)
{
    puts_(b, "Content-Type: ");
    puts_(b, type);
    puts_(b, "; charset=utf-8\r\n");
    size_t n = strlen(content);
    if (needs_base64(content)) {
        puts_(b, "Content-Transfer-Encoding: base64\r\n\r\n");
        for (size_t i = 0; i < n; i += 57) {
            base64_chunk(b, (const unsigned char *)content + i, n - i < 57 ? n - i : 57);
            puts_(b, "\r\n");
        }
        return;
    }
    puts_(b, "Content-Transfer-Encoding: 7bit\r\n\r\n");
    for (const char *c = content; *c; c++) {
        if (*c == '\r' && c[1] == '\n')
            continue; /* written with the \n */
        if (*c == '\n' || *c == '\r')
            puts_(b, "\r\n");
        else
            put(b, c, 1);
    }
    if (n && content[n - 1] != '\n')
        puts_(b, "\r\n");
}

/* A boundary that occurs in neither part. */
static void make_boundary(const struct opts *o, char *out, size_t len)
{
    for (;;) {
        unsigned char r[12];
        rt_random_bytes(r, sizeof r);
        size_t k = (size_t)snprintf(out, len, "=_ratchet_");
        for (size_t i = 0; i < sizeof r && k + 2 < len; i++, k += 2)
            snprintf(out + k, len - k, "%02x", r[i]);
        if (!strstr(o->text, out) && !strstr(o->html, out))
            return;
    }
}

static rt_status build_message(const struct opts *o, const mailbox *from, const char *mid, buf *b,
                               struct curl_slist **rcpt, json_t *recipients, rt_error *err)
{
    put_date(b);
    puts_(b, "From: ");
    put_mailbox(b, from);
    puts_(b, "\r\n");
    if (put_recipients(b, "To", o->to, rcpt, recipients, err) != RT_OK)
        return err->code;
    if (o->cc && put_recipients(b, "Cc", o->cc, rcpt, recipients, err) != RT_OK)
        return err->code;
    puts_(b, "Subject: ");
    put_encoded_words(b, o->subject);
    puts_(b, "\r\nMessage-ID: ");
    puts_(b, mid);
    puts_(b, "\r\nMIME-Version: 1.0\r\n");
    if (o->text && o->html) {
        char boundary[48];
        make_boundary(o, boundary, sizeof boundary);
        puts_(b, "Content-Type: multipart/alternative; boundary=\"");
        puts_(b, boundary);
        puts_(b, "\"\r\n\r\n");
        const char *types[] = {"text/plain", "text/html"}, *parts[] = {o->text, o->html};
        for (int i = 0; i < 2; i++) {
            puts_(b, "--");
            puts_(b, boundary);
            puts_(b, "\r\n");
            put_part(b, types[i], parts[i]);
        }
        puts_(b, "--");
        puts_(b, boundary);
        puts_(b, "--\r\n");
    } else {
        put_part(b, o->text ? "text/plain" : "text/html", o->text ? o->text : o->html);
    }
    if (b->oom)
        return rt_error_set(err, RT_ERR_NOMEM, "email: out of memory building the message");
    return RT_OK;
}

/* ---- the transfer ---------------------------------------------------------------------- */

struct transfer {
    const buf *msg;
    size_t sent;
    char last_answer[200]; /* the server's last 4xx/5xx answer line, printable ASCII */
    volatile sig_atomic_t *cancelled;
    bool was_cancelled;
};

static size_t on_read(char *p, size_t size, size_t n, void *ud)
{
    struct transfer *t = ud;
    size_t left = t->msg->len - t->sent, take = size * n < left ? size * n : left;
    memcpy(p, t->msg->p + t->sent, take);
    t->sent += take;
    return take;
}

/* Keeps the server's last 4xx/5xx answer, the reason a transfer failed (curl's own text
 * has only the code). Never what we send: that holds the AUTH exchange. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *ud)
{
    struct transfer *t = ud;
    if (type != CURLINFO_HEADER_IN || size < 3 || (data[0] != '4' && data[0] != '5'))
        return 0;
    size_t k = 0;
    for (size_t i = 0; i < size && k + 1 < sizeof t->last_answer; i++) {
        unsigned char c = (unsigned char)data[i];
        if (c == '\r' || c == '\n')
            break;
        t->last_answer[k++] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    t->last_answer[k] = '\0';
    return 0;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    struct transfer *t = ud;
    if (t->cancelled && *t->cancelled) {
        t->was_cancelled = true;
        return 1;
    }
    return 0;
}

/* Turns a failed transfer into the step's error: 5xx answers and configuration problems
 * fail for good, the rest may pass on another attempt. */
static void fail_transfer(rt_step_result *res, CURLcode rc, long code, const struct transfer *t,
                          const char *errbuf, const struct opts *o)
{
    const char *answer = t->last_answer;
    bool permanent = code >= 500 && code < 600;
    if (t->was_cancelled || rc == CURLE_ABORTED_BY_CALLBACK) {
        rt_step_fail(res, true, "email: cancelled");
    } else if (rc == CURLE_LOGIN_DENIED) {
        rt_step_fail(res, !permanent && code >= 400, "email: the SMTP server refused the login%s%s", *answer ? ": " : "",
                     answer);
    } else if (rc == CURLE_USE_SSL_FAILED) {
        rt_step_fail(res, false, "email: the SMTP server does not offer STARTTLS (tls \"%s\"; \"none\" sends in clear)",
                     o->tls == TLS_STARTTLS ? "starttls" : "required");
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
        rt_step_fail(res, false, "email: TLS: %s%s%s", curl_easy_strerror(rc), *errbuf ? ": " : "", errbuf);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        char dur[32];
        rt_duration_format(o->timeout_ms, dur, sizeof dur);
        rt_step_fail(res, true, "email: timed out after %s", o->timeout_str ? o->timeout_str : dur);
    } else if (code >= 400 && code < 600) {
        /* curl says which command ("RCPT failed: 550"), the server says why. */
        rt_step_fail(res, !permanent, "email: %s%s%s%s", *errbuf ? errbuf : curl_easy_strerror(rc),
                     permanent ? " (refused for good)" : " (temporary)", *answer ? ": " : "", answer);
    } else {
        bool retriable = rc != CURLE_UNSUPPORTED_PROTOCOL && rc != CURLE_URL_MALFORMAT && rc != CURLE_NOT_BUILT_IN;
        rt_step_fail(res, retriable, "email: %s%s%s", curl_easy_strerror(rc), *errbuf ? ": " : "", errbuf);
    }
    res->error_detail = json_pack("{s:i,s:i,s:s}", "curl_code", (int)rc, "smtp_code", (int)code, "server", answer);
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
        rt_step_fail(res, true, "email: libcurl failed to initialise: %s", curl_easy_strerror(init_rc));
        return;
    }
    int64_t timeout = o.timeout_ms;
    if (ctx->deadline_mono_ms) {
        int64_t left = ctx->deadline_mono_ms - rt_mono_ms();
        if (left <= 0) {
            rt_step_fail(res, true, "email: timed out before sending (step deadline)");
            return;
        }
        if (left < timeout)
            timeout = left;
    }

    mailbox from;
    parse_mailbox(o.from, "\"from\"", &from, &err); /* checked by parse_with */
    char mid[400];
    message_id(ctx, &from, mid, sizeof mid);
    buf msg = {0};
    struct curl_slist *rcpt = NULL;
    json_t *recipients = json_array();
    CURL *h = NULL;
    if (!recipients) {
        rt_step_fail(res, true, "email: out of memory");
        goto done;
    }
    if (build_message(&o, &from, mid, &msg, &rcpt, recipients, &err) != RT_OK) {
        rt_step_fail(res, err.code == RT_ERR_NOMEM, "%s", err.msg);
        goto done;
    }
    h = curl_easy_init();
    if (!h) {
        rt_step_fail(res, true, "email: out of memory");
        goto done;
    }
    struct transfer t = {.msg = &msg, .cancelled = ctx->cancelled};
    char errbuf[CURL_ERROR_SIZE] = "", envelope_from[MAX_ADDRESS + 3];
    snprintf(envelope_from, sizeof envelope_from, "<%s>", from.addr);
    curl_easy_setopt(h, CURLOPT_URL, o.url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_USE_SSL, (long)(o.tls == TLS_NONE ? CURLUSESSL_NONE : CURLUSESSL_ALL));
    if (o.ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o.ca_file);
    if (o.username) {
        curl_easy_setopt(h, CURLOPT_USERNAME, o.username);
        curl_easy_setopt(h, CURLOPT_PASSWORD, o.password ? o.password : "");
    }
    curl_easy_setopt(h, CURLOPT_MAIL_FROM, envelope_from);
    curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg.len);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L); /* for on_debug; nothing is printed */
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, &t);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout);
    CURLcode rc = curl_easy_perform(h);
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        fail_transfer(res, rc, code, &t, errbuf, &o);
        goto done;
    }
    res->outcome = RT_STEP_OK;
    res->output = json_pack("{s:s,s:O}", "message_id", mid, "recipients", recipients);
    if (!res->output)
        rt_step_fail(res, true, "email: out of memory");

done:
    if (h)
        curl_easy_cleanup(h);
    curl_slist_free_all(rcpt);
    json_decref(recipients);
    free(msg.p);
}

const rt_step_type rt_step_email = {.name = "email", .validate = validate, .execute = execute};
