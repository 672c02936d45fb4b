/* expr.c — expressions and ${{ }} templates (DESIGN §3).
 * A single-pass evaluator: the recursive-descent parser computes values as it reads, so
 * an expression costs one scan and no syntax tree. With `skip` set the same code only
 * checks syntax; that is how rt_expr_check works and how && || default() skip the
 * operand they do not need. Values point into ctx where they can (borrowed, no copy)
 * and hold numbers and booleans unboxed, so most conditions allocate nothing. */
#include "expr.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---------------------------------------------------------------- values */

typedef enum vkind { V_NULL, V_BOOL, V_INT, V_REAL, V_STR, V_ARR, V_OBJ } vkind;

typedef struct value {
    vkind kind;
    /* True when j is a reference this value holds; otherwise j is borrowed from ctx (or
     * from a container that outlives the value) and must not be released. */
    bool owned;
    union {
        bool b;
        json_int_t i;
        double r;
    } u;
    json_t *j; /* V_STR, V_ARR, V_OBJ */
} value;

static const value NULL_VALUE = {V_NULL, false, {0}, NULL};

static value make_bool(bool b)
{
    value v = {V_BOOL, false, {0}, NULL};
    v.u.b = b;
    return v;
}

static value make_int(json_int_t i)
{
    value v = {V_INT, false, {0}, NULL};
    v.u.i = i;
    return v;
}

static value make_real(double r)
{
    value v = {V_REAL, false, {0}, NULL};
    v.u.r = r;
    return v;
}

static void release(value *v)
{
    if (v->owned)
        json_decref(v->j);
    *v = NULL_VALUE;
}

/* Wraps j. With owned, the value takes over the caller's reference; scalars are unboxed
 * and that reference dropped at once. */
static value from_json(json_t *j, bool owned)
{
    value v = NULL_VALUE;
    switch (json_typeof(j)) {
    case JSON_STRING: v.kind = V_STR; break;
    case JSON_ARRAY: v.kind = V_ARR; break;
    case JSON_OBJECT: v.kind = V_OBJ; break;
    case JSON_INTEGER: v = make_int(json_integer_value(j)); break;
    case JSON_REAL: v = make_real(json_real_value(j)); break;
    case JSON_TRUE: v = make_bool(true); break;
    case JSON_FALSE: v = make_bool(false); break;
    case JSON_NULL: break;
    }
    if (v.kind >= V_STR) {
        v.j = j;
        v.owned = owned;
    } else if (owned) {
        json_decref(j);
    }
    return v;
}

/* A new reference for v; v gives up its own reference (it is left null). NULL only
 * when out of memory. */
static json_t *to_json_ref(value *v)
{
    json_t *j = NULL;
    switch (v->kind) {
    case V_NULL: j = json_null(); break;
    case V_BOOL: j = json_boolean(v->u.b); break;
    case V_INT: j = json_integer(v->u.i); break;
    case V_REAL: j = json_real(v->u.r); break;
    case V_STR:
    case V_ARR:
    case V_OBJ:
        /* Borrowed from ctx: the caller gets its own reference to the same value. */
        j = v->owned ? v->j : json_incref(v->j);
        v->owned = false;
        break;
    }
    *v = NULL_VALUE;
    return j;
}

static const char *kind_name(vkind k)
{
    switch (k) {
    case V_NULL: return "null";
    case V_BOOL: return "boolean";
    case V_INT:
    case V_REAL: return "number";
    case V_STR: return "string";
    case V_ARR: return "array";
    case V_OBJ: return "object";
    }
    return "?";
}

static bool is_num(const value *v)
{
    return v->kind == V_INT || v->kind == V_REAL;
}

static bool truthy(const value *v)
{
    switch (v->kind) {
    case V_NULL: return false;
    case V_BOOL: return v->u.b;
    case V_INT: return v->u.i != 0;
    case V_REAL: return v->u.r != 0.0;
    case V_STR: return json_string_length(v->j) > 0;
    case V_ARR: return json_array_size(v->j) > 0;
    case V_OBJ: return json_object_size(v->j) > 0;
    }
    return false;
}

bool rt_expr_truthy(const json_t *v)
{
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_NULL:
    case JSON_FALSE: return false;
    case JSON_TRUE: return true;
    case JSON_INTEGER: return json_integer_value(v) != 0;
    case JSON_REAL: return json_real_value(v) != 0.0;
    case JSON_STRING: return json_string_length(v) > 0;
    case JSON_ARRAY: return json_array_size(v) > 0;
    case JSON_OBJECT: return json_object_size(v) > 0;
    }
    return false;
}

/* -1, 0, 1 comparing an integer with a real exactly: converting a large integer to
 * double would round, so compare the real's integer part as an integer instead. */
static int cmp_int_real(json_int_t i, double d)
{
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double t = trunc(d);
    json_int_t ti = (json_int_t)t;
    if (i != ti)
        return i < ti ? -1 : 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

static int num_cmp(const value *a, const value *b)
{
    if (a->kind == V_INT && b->kind == V_INT)
        return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    if (a->kind == V_INT)
        return cmp_int_real(a->u.i, b->u.r);
    if (b->kind == V_INT)
        return -cmp_int_real(b->u.i, a->u.r);
    return a->u.r < b->u.r ? -1 : a->u.r > b->u.r;
}

static bool json_equal_num(json_t *x, json_t *y);

/* Deep equality where numbers compare by value across integer and real (1 == 1.0). */
static bool val_equal(const value *a, const value *b)
{
    if (is_num(a) && is_num(b))
        return num_cmp(a, b) == 0;
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case V_NULL: return true;
    case V_BOOL: return a->u.b == b->u.b;
    case V_STR:
        return json_string_length(a->j) == json_string_length(b->j) &&
               memcmp(json_string_value(a->j), json_string_value(b->j),
                      json_string_length(a->j)) == 0;
    default: return json_equal_num(a->j, b->j);
    }
}

static bool json_equal_num(json_t *x, json_t *y)
{
    if (x == y)
        return true;
    if (json_is_array(x) && json_is_array(y)) {
        size_t n = json_array_size(x);
        if (n != json_array_size(y))
            return false;
        for (size_t i = 0; i < n; i++)
            if (!json_equal_num(json_array_get(x, i), json_array_get(y, i)))
                return false;
        return true;
    }
    if (json_is_object(x) && json_is_object(y)) {
        if (json_object_size(x) != json_object_size(y))
            return false;
        const char *key;
        size_t klen;
        json_t *xv;
        json_object_keylen_foreach(x, key, klen, xv)
        {
            json_t *yv = json_object_getn(y, key, klen);
            if (!yv || !json_equal_num(xv, yv))
                return false;
        }
        return true;
    }
    /* Scalars (and a container against anything else) compare as values; the wrappers
     * borrow x and y, nothing is allocated. */
    value a = from_json(x, false), b = from_json(y, false);
    return a.kind < V_ARR && b.kind < V_ARR && val_equal(&a, &b);
}

/* ---------------------------------------------------------------- text building */

typedef struct strbuf {
    char *d;
    size_t len, cap;
    bool too_long; /* the RT_EXPR_MAX_STRING bound was hit (else a failure is NOMEM) */
} strbuf;

static bool sb_add(strbuf *b, const char *s, size_t n)
{
    if (n > RT_EXPR_MAX_STRING - b->len) {
        b->too_long = true;
        return false;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n)
            cap *= 2;
        char *d = realloc(b->d, cap);
        if (!d)
            return false;
        b->d = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->d + b->len, s, n);
    b->len += n;
    return true;
}

static bool sb_str(strbuf *b, const char *s)
{
    return sb_add(b, s, strlen(s));
}

/* The shortest of %.15g..%.17g that reads back as the same double, so 0.1 prints as
 * "0.1" (jansson's own encoder prints 0.10000000000000001); ".0" marks it as a real. */
static bool sb_real(strbuf *b, double r)
{
    char buf[40];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, r);
        if (strtod(buf, NULL) == r)
            break;
    }
    if (!strpbrk(buf, ".eE"))
        strcat(buf, ".0");
    return sb_str(b, buf);
}

static bool sb_int(strbuf *b, json_int_t i)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, i);
    return sb_str(b, buf);
}

static bool sb_json_string(strbuf *b, const char *s, size_t n)
{
    if (!sb_add(b, "\"", 1))
        return false;
    size_t run = 0; /* bytes copied as they are, flushed before each escape */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char ubuf[8];
        switch (c) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        default:
            if (c < 0x20) {
                snprintf(ubuf, sizeof ubuf, "\\u%04x", c);
                esc = ubuf;
            }
        }
        if (!esc)
            continue;
        if (!sb_add(b, s + run, i - run) || !sb_str(b, esc))
            return false;
        run = i + 1;
    }
    return sb_add(b, s + run, n - run) && sb_add(b, "\"", 1);
}

/* Compact JSON, keys in insertion order. Depth is bounded by how the value was built
 * (jansson's parser stops at 2048 levels). */
static bool sb_json(strbuf *b, json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL: return sb_add(b, "null", 4);
    case JSON_TRUE: return sb_add(b, "true", 4);
    case JSON_FALSE: return sb_add(b, "false", 5);
    case JSON_INTEGER: return sb_int(b, json_integer_value(j));
    case JSON_REAL: return sb_real(b, json_real_value(j));
    case JSON_STRING: return sb_json_string(b, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        if (!sb_add(b, "[", 1))
            return false;
        size_t n = json_array_size(j);
        for (size_t i = 0; i < n; i++)
            if ((i && !sb_add(b, ",", 1)) || !sb_json(b, json_array_get(j, i)))
                return false;
        return sb_add(b, "]", 1);
    }
    case JSON_OBJECT: {
        if (!sb_add(b, "{", 1))
            return false;
        const char *key;
        size_t klen;
        json_t *v;
        bool first = true;
        json_object_keylen_foreach(j, key, klen, v)
        {
            if ((!first && !sb_add(b, ",", 1)) || !sb_json_string(b, key, klen) ||
                !sb_add(b, ":", 1) || !sb_json(b, v))
                return false;
            first = false;
        }
        return sb_add(b, "}", 1);
    }
    }
    return false;
}

/* v as compact JSON (to_json) or, with raw, as interpolated text: strings without
 * quotes and null as nothing. */
static bool sb_value(strbuf *b, const value *v, bool raw)
{
    switch (v->kind) {
    case V_NULL: return raw ? true : sb_add(b, "null", 4);
    case V_BOOL: return v->u.b ? sb_add(b, "true", 4) : sb_add(b, "false", 5);
    case V_INT: return sb_int(b, v->u.i);
    case V_REAL: return sb_real(b, v->u.r);
    case V_STR:
        if (raw)
            return sb_add(b, json_string_value(v->j), json_string_length(v->j));
        /* fallthrough */
    default: return sb_json(b, v->j);
    }
}

static bool utf8_valid(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = rt_utf8_seq_len(p + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

/* Characters (not continuation bytes) in s[0..n): columns and len() count these. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

/* ---------------------------------------------------------------- lexer */

typedef enum tok {
    T_EOF, T_INT, T_REAL, T_STR, T_IDENT, T_NULL, T_TRUE, T_FALSE, T_LPAREN, T_RPAREN,
    T_LBRACK, T_RBRACK, T_DOT, T_COMMA, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE, T_AND, T_OR,
    T_NOT, T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PCT, T_IN,
} tok;

typedef struct parser {
    const char *src; /* not NUL-terminated: templates pass a slice */
    size_t len;
    size_t pos;          /* next unread byte */
    tok t;               /* current token */
    size_t tstart, tlen; /* its bytes in src */
    json_int_t ival;     /* T_INT */
    double rval;         /* T_REAL */
    char *sval;          /* T_STR, decoded (points into scratch) */
    size_t slen;
    json_t *ctx; /* borrowed for the whole evaluation */
    int depth;
    int skip; /* > 0: syntax only, no context reads and no value errors */
    rt_error *err;
    char small[128]; /* scratch for short literals; `heap` (len + 1 bytes) for long ones */
    char *heap;
} parser;

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Room for a decoded token of at most n bytes. Decoding never lengthens a token, so
 * one buffer of the expression's size serves every long literal. */
static char *scratch(parser *p, size_t n)
{
    if (n < sizeof p->small)
        return p->small;
    if (!p->heap)
        p->heap = malloc(p->len + 1);
    return p->heap;
}

/* Sets err to "expression `SRC`: column N: MSG" and returns RT_ERR_INVALID. The quoted
 * source is cut short to leave room for the message. */
static rt_status fail(parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static rt_status fail(parser *p, size_t at, const char *fmt, ...)
{
    char msg[RT_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t shown = p->len, max = 200;
    if (shown > max) {
        shown = max;
        while (shown > 0 && ((unsigned char)p->src[shown] & 0xC0) == 0x80)
            shown--; /* do not cut a UTF-8 sequence */
    }
    return rt_error_set(p->err, RT_ERR_INVALID, "expression `%.*s%s`: column %zu: %s",
                        (int)shown, p->src, shown < p->len ? "..." : "",
                        utf8_chars(p->src, at) + 1, msg);
}

/* The current token for messages: 'xyz' (cut to 20 bytes) or "the end". */
static const char *tok_text(parser *p, char *buf, size_t n)
{
    if (p->t == T_EOF)
        return "the end";
    size_t l = p->tlen > 20 ? 20 : p->tlen;
    unsigned char c = (unsigned char)p->src[p->tstart];
    if (c < 0x20 || c >= 0x7F)
        snprintf(buf, n, "byte 0x%02x", c); /* control or non-ASCII: do not print raw */
    else
        snprintf(buf, n, "'%.*s%s'", (int)l, p->src + p->tstart, l < p->tlen ? "..." : "");
    return buf;
}

static int hex4(const char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else
            return -1;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static rt_status lex_string(parser *p)
{
    const char *s = p->src;
    char q = s[p->pos++];
    char *o = scratch(p, p->len - p->tstart);
    if (!o)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    size_t n = 0;
    for (;;) {
        if (p->pos >= p->len)
            return fail(p, p->tstart, "unterminated string");
        char c = s[p->pos];
        if (c == q) {
            p->pos++;
            break;
        }
        if (c != '\\') {
            o[n++] = c;
            p->pos++;
            continue;
        }
        size_t at = p->pos;
        if (++p->pos >= p->len)
            return fail(p, p->tstart, "unterminated string");
        c = s[p->pos++];
        switch (c) {
        case 'n': o[n++] = '\n'; break;
        case 't': o[n++] = '\t'; break;
        case 'r': o[n++] = '\r'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case '\\':
        case '/':
        case '\'':
        case '"': o[n++] = c; break;
        case 'u': {
            int cp = p->len - p->pos >= 4 ? hex4(s + p->pos) : -1;
            if (cp < 0)
                return fail(p, at, "\\u needs 4 hex digits");
            p->pos += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return fail(p, at, "lone low surrogate in \\u escape");
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                int lo = p->len - p->pos >= 6 && s[p->pos] == '\\' && s[p->pos + 1] == 'u'
                             ? hex4(s + p->pos + 2)
                             : -1;
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return fail(p, at, "high surrogate in \\u escape without a low one");
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            n += put_utf8(o + n, (unsigned)cp);
            break;
        }
        default:
            if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F)
                return fail(p, at, "unknown escape");
            return fail(p, at, "unknown escape \\%c", c);
        }
    }
    if (!utf8_valid(o, n))
        return fail(p, p->tstart, "string is not valid UTF-8");
    p->t = T_STR;
    p->sval = o;
    p->slen = n;
    return RT_OK;
}

static rt_status lex_number(parser *p)
{
    const char *s = p->src;
    bool real = false;
    while (p->pos < p->len && is_digit(s[p->pos]))
        p->pos++;
    if (p->pos + 1 < p->len && s[p->pos] == '.' && is_digit(s[p->pos + 1])) {
        real = true;
        p->pos++;
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
        real = true;
        p->pos++;
        if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
            p->pos++;
        if (p->pos >= p->len || !is_digit(s[p->pos]))
            return fail(p, p->tstart, "malformed number");
        while (p->pos < p->len && is_digit(s[p->pos]))
            p->pos++;
    }
    if (p->pos < p->len && (is_alpha(s[p->pos]) || is_digit(s[p->pos])))
        return fail(p, p->tstart, "malformed number");
    size_t n = p->pos - p->tstart;
    if (!real) {
        json_int_t v = 0;
        for (size_t i = p->tstart; i < p->pos; i++)
            if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, s[i] - '0', &v))
                return fail(p, p->tstart, "integer literal out of range");
        p->t = T_INT;
        p->ival = v;
        return RT_OK;
    }
    char *buf = scratch(p, n);
    if (!buf)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    memcpy(buf, s + p->tstart, n); /* strtod needs a terminated copy of the slice */
    buf[n] = '\0';
    p->rval = strtod(buf, NULL);
    if (!isfinite(p->rval))
        return fail(p, p->tstart, "number out of range");
    p->t = T_REAL;
    return RT_OK;
}

static bool word_is(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* Reads the next token into p->t. */
static rt_status lex(parser *p)
{
    const char *s = p->src;
    while (p->pos < p->len &&
           (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r'))
        p->pos++;
    p->tstart = p->pos;
    rt_status st = RT_OK;
    if (p->pos >= p->len) {
        p->t = T_EOF;
        p->tlen = 0;
        return RT_OK;
    }
    char c = s[p->pos];
    char next = p->pos + 1 < p->len ? s[p->pos + 1] : '\0';
    size_t w = 1; /* width of a punctuation token */
    switch (c) {
    case '(': p->t = T_LPAREN; break;
    case ')': p->t = T_RPAREN; break;
    case '[': p->t = T_LBRACK; break;
    case ']': p->t = T_RBRACK; break;
    case '.': p->t = T_DOT; break;
    case ',': p->t = T_COMMA; break;
    case '+': p->t = T_PLUS; break;
    case '-': p->t = T_MINUS; break;
    case '*': p->t = T_STAR; break;
    case '/': p->t = T_SLASH; break;
    case '%': p->t = T_PCT; break;
    case '!':
        p->t = next == '=' ? T_NE : T_NOT;
        w = next == '=' ? 2 : 1;
        break;
    case '<':
        p->t = next == '=' ? T_LE : T_LT;
        w = next == '=' ? 2 : 1;
        break;
    case '>':
        p->t = next == '=' ? T_GE : T_GT;
        w = next == '=' ? 2 : 1;
        break;
    case '=':
        if (next != '=')
            return fail(p, p->pos, "unexpected '=' (compare with ==)");
        p->t = T_EQ;
        w = 2;
        break;
    case '&':
        if (next != '&')
            return fail(p, p->pos, "unexpected '&' (use &&)");
        p->t = T_AND;
        w = 2;
        break;
    case '|':
        if (next != '|')
            return fail(p, p->pos, "unexpected '|' (use ||)");
        p->t = T_OR;
        w = 2;
        break;
    case '\'':
    case '"':
        st = lex_string(p);
        p->tlen = p->pos - p->tstart;
        return st;
    default:
        if (is_digit(c)) {
            st = lex_number(p);
        } else if (is_alpha(c)) {
            while (p->pos < p->len && (is_alpha(s[p->pos]) || is_digit(s[p->pos])))
                p->pos++;
            const char *id = s + p->tstart;
            size_t n = p->pos - p->tstart;
            p->t = word_is(id, n, "null")    ? T_NULL
                   : word_is(id, n, "true")  ? T_TRUE
                   : word_is(id, n, "false") ? T_FALSE
                   : word_is(id, n, "in")    ? T_IN
                                             : T_IDENT;
        } else if ((unsigned char)c < 0x20 || (unsigned char)c >= 0x7F) {
            return fail(p, p->pos, "unexpected byte 0x%02x", (unsigned char)c);
        } else {
            return fail(p, p->pos, "unexpected character '%c'", c);
        }
        p->tlen = p->pos - p->tstart;
        return st;
    }
    p->pos += w;
    p->tlen = w;
    return RT_OK;
}

/* A member name right after '.': letters, digits and _, with '-' allowed between them
 * so step ids such as fetch-data work (steps.fetch-data.output). Leaves p->pos after it. */
static size_t scan_member(parser *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    while (i < p->len) {
        if (is_alpha(s[i]) || is_digit(s[i]))
            i++;
        else if (s[i] == '-' && i > p->pos && i + 1 < p->len &&
                 (is_alpha(s[i + 1]) || is_digit(s[i + 1])))
            i++;
        else
            break;
    }
    size_t n = i - p->pos;
    p->pos = i;
    return n;
}

/* ---------------------------------------------------------------- parser + evaluator */

/* Every parse_* function leaves *out holding a value (V_NULL when skipping) on RT_OK and
 * nothing to release on error: callers release only what they still hold. */
static rt_status parse_expr(parser *p, value *out);

static rt_status expect(parser *p, tok t, const char *what)
{
    if (p->t != t) {
        char buf[48];
        return fail(p, p->tstart, "expected %s, got %s", what, tok_text(p, buf, sizeof buf));
    }
    return lex(p);
}

/* Steps into v (consumed) by a child of it: borrowed from v's container. */
static value step_into(value *v, json_t *child)
{
    if (!child) {
        release(v);
        return NULL_VALUE;
    }
    value c = from_json(child, false);
    /* The child lives as long as its container. A container from ctx outlives the whole
     * evaluation; one we own (from_json()) is released here, so the child needs its own
     * reference first. */
    if (v->owned && c.j) {
        json_incref(c.j);
        c.owned = true;
    }
    release(v);
    return c;
}

static rt_status index_value(parser *p, size_t at, value *base, value *idx)
{
    json_t *child = NULL;
    json_int_t i = 0;
    bool by_int = false;
    switch (idx->kind) {
    case V_NULL: break; /* a missing index gives null like a missing key */
    case V_INT:
        i = idx->u.i;
        by_int = true;
        break;
    case V_REAL:
        if (trunc(idx->u.r) != idx->u.r) {
            release(base);
            return fail(p, at, "index must be an integer or a string, got a fraction");
        }
        if (idx->u.r >= 0 && idx->u.r < 9.2e18) {
            i = (json_int_t)idx->u.r;
            by_int = true;
        }
        break;
    case V_STR:
        child = json_object_getn(base->j, json_string_value(idx->j), json_string_length(idx->j));
        break;
    default:
        release(base);
        return fail(p, at, "index must be an integer or a string, got %s", kind_name(idx->kind));
    }
    if (by_int && base->kind == V_ARR && i >= 0 && (size_t)i < json_array_size(base->j))
        child = json_array_get(base->j, (size_t)i);
    *base = step_into(base, child); /* base->j is NULL for scalars: getn returns NULL */
    return RT_OK;
}

/* The value of RATCHET_SECRET_<name>, or null when unset. Messages name the secret,
 * never its value. */
static rt_status read_secret(parser *p, size_t at, const char *name, size_t n, value *out)
{
    *out = NULL_VALUE;
    if (n == 0)
        return fail(p, at, "secret name is empty");
    if (n > 100)
        return fail(p, at, "secret name is longer than 100 characters");
    for (size_t i = 0; i < n; i++)
        if (!is_alpha(name[i]) && !is_digit(name[i]))
            return fail(p, at, "secret names hold only letters, digits and _");
    if (p->skip)
        return RT_OK;
    char env[128];
    snprintf(env, sizeof env, "RATCHET_SECRET_%.*s", (int)n, name);
    const char *sv = getenv(env);
    if (!sv)
        return RT_OK;
    size_t sl = strlen(sv);
    if (sl > RT_EXPR_MAX_STRING || !utf8_valid(sv, sl))
        return fail(p, at, "secret %.*s is not valid UTF-8 text of at most %d bytes", (int)n,
                    name, RT_EXPR_MAX_STRING);
    json_t *j = json_stringn_nocheck(sv, sl);
    if (!j)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    *out = from_json(j, true); /* takes the new reference */
    return RT_OK;
}

/* secrets.NAME or secrets['NAME'], after the identifier `secrets` (at = its start). The
 * name must be literal so an event cannot choose which secret a template reads. */
static rt_status parse_secret(parser *p, size_t at, value *out)
{
    rt_status st;
    char name[128]; /* copied: a bracketed name lives in scratch, reused by the next lex */
    size_t n, name_at;
    if (p->t == T_DOT) {
        name_at = p->pos;
        const char *s = p->src + p->pos;
        n = scan_member(p);
        if (n >= sizeof name)
            return fail(p, name_at, "secret name is longer than 100 characters");
        memcpy(name, s, n);
        if ((st = lex(p)))
            return st;
    } else if (p->t == T_LBRACK) {
        if ((st = lex(p)))
            return st;
        name_at = p->tstart;
        if (p->t != T_STR)
            return fail(p, name_at, "secrets[...] needs a quoted name");
        n = p->slen;
        if (n >= sizeof name)
            return fail(p, name_at, "secret name is longer than 100 characters");
        memcpy(name, p->sval, n);
        if ((st = lex(p)) || (st = expect(p, T_RBRACK, "']'")))
            return st;
    } else {
        return fail(p, at, "secrets needs a name: secrets.NAME");
    }
    return read_secret(p, name_at, name, n, out);
}

/* ---------------------------------------------------------------- functions */

typedef enum fn_id { F_LEN, F_LOWER, F_UPPER, F_DEFAULT, F_SHA256, F_TO_JSON, F_FROM_JSON, F_NOW } fn_id;

static const struct fn {
    const char *name;
    fn_id id;
    int nargs;
} FUNCTIONS[] = {
    {"len", F_LEN, 1},         {"lower", F_LOWER, 1},       {"upper", F_UPPER, 1},
    {"default", F_DEFAULT, 2}, {"sha256", F_SHA256, 1},     {"to_json", F_TO_JSON, 1},
    {"from_json", F_FROM_JSON, 1}, {"now", F_NOW, 0},
};

#define MAX_ARGS 2

static rt_status new_string(parser *p, const char *s, size_t n, value *out)
{
    json_t *j = json_stringn_nocheck(s, n); /* callers pass valid UTF-8 */
    if (!j)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    *out = from_json(j, true); /* takes the new reference */
    return RT_OK;
}

static rt_status text_fail(parser *p, size_t at, const char *what, const strbuf *b)
{
    if (b->too_long)
        return fail(p, at, "%s: result longer than %d bytes", what, RT_EXPR_MAX_STRING);
    return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
}

/* Applies fn to args (consumed). Messages name types, never values. */
/* lower() and upper(): ASCII only, bytes >= 0x80 (UTF-8 sequences) pass through unchanged. */
static rt_status fn_case(parser *p, size_t at, const struct fn *fn, const value *a, value *out)
{
    if (a->kind != V_STR)
        return fail(p, at, "%s() needs a string, got %s", fn->name, kind_name(a->kind));
    size_t n = json_string_length(a->j);
    if (n > RT_EXPR_MAX_STRING)
        return fail(p, at, "%s(): result longer than %d bytes", fn->name, RT_EXPR_MAX_STRING);
    char *buf = malloc(n ? n : 1);
    if (!buf)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    const char *s = json_string_value(a->j);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (fn->id == F_LOWER && c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (fn->id == F_UPPER && c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        buf[i] = c;
    }
    rt_status st = new_string(p, buf, n, out);
    free(buf);
    return st;
}

static rt_status fn_from_json(parser *p, size_t at, const value *a, value *out)
{
    if (a->kind != V_STR)
        return fail(p, at, "from_json() needs a string, got %s", kind_name(a->kind));
    json_error_t jerr;
    json_t *j = json_loadb(json_string_value(a->j), json_string_length(a->j), JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!j) /* jansson's text quotes the input ("near 'abc'"), which may be a secret: the position only */
        return fail(p, at, "from_json(): not valid JSON (line %d, column %d)", jerr.line, jerr.column);
    *out = from_json(j, true); /* takes the new reference */
    return RT_OK;
}

static rt_status call_fn(parser *p, size_t at, const struct fn *fn, value *args, value *out)
{
    value *a = &args[0];
    rt_status st = RT_OK;
    *out = NULL_VALUE;
    switch (fn->id) {
    case F_LEN:
        if (a->kind == V_STR)
            *out = make_int((json_int_t)utf8_chars(json_string_value(a->j), json_string_length(a->j)));
        else if (a->kind == V_ARR)
            *out = make_int((json_int_t)json_array_size(a->j));
        else if (a->kind == V_OBJ)
            *out = make_int((json_int_t)json_object_size(a->j));
        else if (a->kind == V_NULL)
            *out = make_int(0); /* a missing list counts as empty */
        else
            st = fail(p, at, "len() needs a string, array or object, got %s", kind_name(a->kind));
        break;
    case F_LOWER:
    case F_UPPER:
        st = fn_case(p, at, fn, a, out);
        break;
    case F_DEFAULT:
        /* Hand over whichever argument wins, with its reference; the other is released
         * below (a skipped second argument is null). */
        if (a->kind == V_NULL) {
            *out = args[1];
            args[1] = NULL_VALUE;
        } else {
            *out = *a;
            *a = NULL_VALUE;
        }
        break;
    case F_SHA256: {
        if (a->kind != V_STR) {
            st = fail(p, at, "sha256() needs a string, got %s (use sha256(to_json(x)))",
                      kind_name(a->kind));
            break;
        }
        char hex[65];
        rt_sha256_hex(json_string_value(a->j), json_string_length(a->j), hex);
        st = new_string(p, hex, 64, out);
        break;
    }
    case F_TO_JSON: {
        strbuf b = {0};
        if (sb_value(&b, a, false))
            st = new_string(p, b.d, b.len, out);
        else
            st = text_fail(p, at, "to_json()", &b);
        free(b.d);
        break;
    }
    case F_FROM_JSON:
        st = fn_from_json(p, at, a, out);
        break;
    case F_NOW: {
        char buf[40];
        rt_time_format(rt_now_ms(), buf, sizeof buf);
        st = new_string(p, buf, strlen(buf), out);
        break;
    }
    }
    for (int i = 0; i < MAX_ARGS; i++)
        release(&args[i]);
    return st;
}

/* name( args ), the current token being '('. default() does not evaluate its second
 * argument when the first is not null. */
static rt_status parse_call(parser *p, size_t at, const char *name, size_t n, value *out)
{
    const struct fn *fn = NULL;
    for (size_t i = 0; i < sizeof FUNCTIONS / sizeof FUNCTIONS[0]; i++)
        if (word_is(name, n, FUNCTIONS[i].name))
            fn = &FUNCTIONS[i];
    if (!fn)
        return fail(p, at, "unknown function %.*s()", (int)n, name);
    value args[MAX_ARGS] = {NULL_VALUE, NULL_VALUE};
    int argc = 0;
    rt_status st = lex(p);
    if (!st && p->t != T_RPAREN) {
        for (;;) {
            value v;
            bool skip = fn->id == F_DEFAULT && argc == 1 && !p->skip && args[0].kind != V_NULL;
            p->skip += skip;
            st = parse_expr(p, &v);
            p->skip -= skip;
            if (st)
                break;
            if (argc < MAX_ARGS)
                args[argc] = v;
            else
                release(&v); /* too many: keep parsing to count them for the message */
            argc++;
            if (p->t != T_COMMA)
                break;
            if ((st = lex(p)))
                break;
        }
    }
    if (!st)
        st = expect(p, T_RPAREN, "',' or ')'");
    if (!st && argc != fn->nargs)
        st = fail(p, at, "%s() takes %d argument%s, got %d", fn->name, fn->nargs,
                  fn->nargs == 1 ? "" : "s", argc);
    if (st || p->skip) {
        for (int i = 0; i < MAX_ARGS; i++)
            release(&args[i]);
        *out = NULL_VALUE;
        return st;
    }
    return call_fn(p, at, fn, args, out);
}

/* ---------------------------------------------------------------- operators */

static const char *op_name(tok t)
{
    switch (t) {
    case T_PLUS: return "+";
    case T_MINUS: return "-";
    case T_STAR: return "*";
    case T_SLASH: return "/";
    case T_PCT: return "%";
    case T_LT: return "<";
    case T_LE: return "<=";
    case T_GT: return ">";
    case T_GE: return ">=";
    case T_EQ: return "==";
    case T_NE: return "!=";
    case T_IN: return "in";
    default: return "?";
    }
}

/* The binary operators below take ownership of a and b and always set *out. */
typedef rt_status (*binary_fn)(parser *p, tok op, size_t at, value *a, value *b, value *out);

static rt_status numbers_needed(parser *p, tok op, size_t at, const value *a, const value *b)
{
    const char *need = op == T_PLUS ? "two numbers or two strings" : "numbers";
    if (op != T_PLUS && is_num(a))
        return fail(p, at, "operator %s needs %s, got %s on the right", op_name(op), need,
                    kind_name(b->kind));
    if (op != T_PLUS && is_num(b))
        return fail(p, at, "operator %s needs %s, got %s on the left", op_name(op), need,
                    kind_name(a->kind));
    return fail(p, at, "operator %s needs %s, got %s and %s", op_name(op), need,
                kind_name(a->kind), kind_name(b->kind));
}

static rt_status concat(parser *p, size_t at, const value *a, const value *b, value *out)
{
    size_t la = json_string_length(a->j), lb = json_string_length(b->j);
    if (la > RT_EXPR_MAX_STRING || lb > RT_EXPR_MAX_STRING - la)
        return fail(p, at, "operator +: string longer than %d bytes", RT_EXPR_MAX_STRING);
    char *buf = malloc(la + lb + 1);
    if (!buf)
        return rt_error_set(p->err, RT_ERR_NOMEM, "out of memory");
    memcpy(buf, json_string_value(a->j), la);
    memcpy(buf + la, json_string_value(b->j), lb);
    rt_status st = new_string(p, buf, la + lb, out); /* two valid UTF-8 strings joined */
    free(buf);
    return st;
}

static rt_status arith(parser *p, tok op, size_t at, value *a, value *b, value *out)
{
    rt_status st = RT_OK;
    *out = NULL_VALUE;
    if (op == T_PLUS && a->kind == V_STR && b->kind == V_STR) {
        st = concat(p, at, a, b, out);
    } else if (!is_num(a) || !is_num(b)) {
        st = numbers_needed(p, op, at, a, b);
    } else if (a->kind == V_INT && b->kind == V_INT) {
        json_int_t x = a->u.i, y = b->u.i, r = 0;
        bool over = false;
        switch (op) {
        case T_PLUS: over = __builtin_add_overflow(x, y, &r); break;
        case T_MINUS: over = __builtin_sub_overflow(x, y, &r); break;
        case T_STAR: over = __builtin_mul_overflow(x, y, &r); break;
        case T_SLASH:
            if (y == 0)
                return fail(p, at, "division by zero");
            if (x == INT64_MIN && y == -1) {
                over = true;
            } else if (x % y == 0) {
                r = x / y;
            } else {
                *out = make_real((double)x / (double)y);
                return RT_OK;
            }
            break;
        case T_PCT:
            if (y == 0)
                return fail(p, at, "modulo by zero");
            r = y == -1 ? 0 : x % y; /* INT64_MIN % -1 traps on x86 */
            break;
        default: break;
        }
        if (over)
            return fail(p, at, "integer overflow in operator %s", op_name(op));
        *out = make_int(r);
    } else {
        double x = a->kind == V_INT ? (double)a->u.i : a->u.r;
        double y = b->kind == V_INT ? (double)b->u.i : b->u.r;
        double r = 0;
        switch (op) {
        case T_PLUS: r = x + y; break;
        case T_MINUS: r = x - y; break;
        case T_STAR: r = x * y; break;
        case T_SLASH:
            if (y == 0)
                return fail(p, at, "division by zero");
            r = x / y;
            break;
        case T_PCT:
            if (y == 0)
                return fail(p, at, "modulo by zero");
            r = fmod(x, y);
            break;
        default: break;
        }
        if (!isfinite(r))
            return fail(p, at, "operator %s: result out of range", op_name(op));
        *out = make_real(r);
    }
    release(a);
    release(b);
    return st;
}

static rt_status compare(parser *p, tok op, size_t at, value *a, value *b, value *out)
{
    int c;
    *out = NULL_VALUE;
    if (is_num(a) && is_num(b)) {
        c = num_cmp(a, b);
    } else if (a->kind == V_STR && b->kind == V_STR) {
        /* Byte order of UTF-8 is code point order. */
        size_t la = json_string_length(a->j), lb = json_string_length(b->j);
        c = memcmp(json_string_value(a->j), json_string_value(b->j), la < lb ? la : lb);
        if (c == 0)
            c = la < lb ? -1 : la > lb;
    } else {
        rt_status st = fail(p, at, "operator %s needs two numbers or two strings, got %s and %s",
                            op_name(op), kind_name(a->kind), kind_name(b->kind));
        release(a);
        release(b);
        return st;
    }
    release(a);
    release(b);
    *out = make_bool(op == T_LT ? c < 0 : op == T_LE ? c <= 0 : op == T_GT ? c > 0 : c >= 0);
    return RT_OK;
}

static rt_status in_op(parser *p, size_t at, value *a, value *b, value *out)
{
    bool found = false;
    rt_status st = RT_OK;
    switch (b->kind) {
    case V_NULL: break; /* a missing list holds nothing */
    case V_ARR: {
        size_t n = json_array_size(b->j);
        for (size_t i = 0; i < n && !found; i++) {
            value e = from_json(json_array_get(b->j, i), false); /* borrowed from b */
            found = val_equal(a, &e);
        }
        break;
    }
    case V_STR:
    case V_OBJ:
        if (a->kind != V_STR) {
            st = fail(p, at, "operator in needs a string on the left to search %s %s, got %s",
                      b->kind == V_STR ? "a" : "an", kind_name(b->kind), kind_name(a->kind));
        } else if (b->kind == V_STR) {
            found = memmem(json_string_value(b->j), json_string_length(b->j),
                           json_string_value(a->j), json_string_length(a->j)) != NULL;
        } else {
            found = json_object_getn(b->j, json_string_value(a->j), json_string_length(a->j));
        }
        break;
    default:
        st = fail(p, at, "operator in needs an array, string or object on the right, got %s",
                  kind_name(b->kind));
    }
    release(a);
    release(b);
    *out = st ? NULL_VALUE : make_bool(found);
    return st;
}

static rt_status relational(parser *p, tok op, size_t at, value *a, value *b, value *out)
{
    return op == T_IN ? in_op(p, at, a, b, out) : compare(p, op, at, a, b, out);
}

static rt_status equality(parser *p, tok op, size_t at, value *a, value *b, value *out)
{
    bool eq = val_equal(a, b);
    release(a);
    release(b);
    *out = make_bool(op == T_EQ ? eq : !eq);
    return RT_OK;
}

/* ---------------------------------------------------------------- grammar */

static rt_status parse_primary(parser *p, value *out)
{
    rt_status st;
    size_t at = p->tstart;
    *out = NULL_VALUE;
    switch (p->t) {
    case T_NULL: return lex(p);
    case T_TRUE:
    case T_FALSE:
        *out = make_bool(p->t == T_TRUE);
        return lex(p);
    case T_INT:
        *out = make_int(p->ival);
        return lex(p);
    case T_REAL:
        *out = make_real(p->rval);
        return lex(p);
    case T_STR:
        if (!p->skip && (st = new_string(p, p->sval, p->slen, out)))
            return st;
        break;
    case T_LPAREN:
        if ((st = lex(p)) || (st = parse_expr(p, out)))
            return st;
        if ((st = expect(p, T_RPAREN, "')'")))
            release(out);
        return st;
    case T_IDENT: {
        const char *name = p->src + at;
        size_t n = p->tlen;
        if ((st = lex(p)))
            return st;
        if (p->t == T_LPAREN)
            return parse_call(p, at, name, n, out);
        if (word_is(name, n, "secrets"))
            return parse_secret(p, at, out);
        if (!p->skip) {
            json_t *root = json_object_getn(p->ctx, name, n); /* borrowed from ctx */
            if (root)
                *out = from_json(root, false);
        }
        return RT_OK;
    }
    default: {
        char buf[48];
        if (p->t == T_EOF)
            return fail(p, at, "expected a value");
        return fail(p, at, "expected a value, got %s", tok_text(p, buf, sizeof buf));
    }
    }
    if ((st = lex(p)))
        release(out);
    return st;
}

static rt_status parse_postfix(parser *p, value *out)
{
    rt_status st = parse_primary(p, out);
    while (!st) {
        if (p->t == T_DOT) {
            size_t at = p->pos;
            const char *name = p->src + p->pos;
            size_t n = scan_member(p);
            if (n == 0) {
                release(out);
                return fail(p, at, "expected a name after '.'");
            }
            if (!p->skip)
                *out = step_into(out, json_object_getn(out->j, name, n)); /* NULL unless V_OBJ */
            st = lex(p);
        } else if (p->t == T_LBRACK) {
            size_t at = p->tstart;
            value idx = NULL_VALUE;
            if ((st = lex(p)) || (st = parse_expr(p, &idx)) || (st = expect(p, T_RBRACK, "']'"))) {
                release(&idx);
                break;
            }
            if (!p->skip)
                st = index_value(p, at, out, &idx); /* releases *out on error */
            release(&idx);
        } else {
            return RT_OK;
        }
    }
    release(out);
    return st;
}

static rt_status nesting_check(parser *p)
{
    if (++p->depth > RT_EXPR_MAX_DEPTH)
        return fail(p, p->tstart, "nested deeper than %d levels", RT_EXPR_MAX_DEPTH);
    return RT_OK;
}

static rt_status parse_unary(parser *p, value *out)
{
    if (p->t != T_NOT && p->t != T_MINUS)
        return parse_postfix(p, out);
    tok op = p->t;
    size_t at = p->tstart;
    value v;
    rt_status st;
    *out = NULL_VALUE;
    if ((st = nesting_check(p)) || (st = lex(p)) || (st = parse_unary(p, &v)))
        return st;
    p->depth--;
    if (p->skip)
        return RT_OK;
    if (op == T_NOT) {
        *out = make_bool(!truthy(&v));
    } else if (v.kind == V_INT) {
        if (v.u.i == INT64_MIN)
            return fail(p, at, "integer overflow in operator -");
        *out = make_int(-v.u.i);
    } else if (v.kind == V_REAL) {
        *out = make_real(-v.u.r);
    } else {
        st = fail(p, at, "operator - needs a number, got %s", kind_name(v.kind));
    }
    release(&v);
    return st;
}

typedef rt_status (*parse_fn)(parser *p, value *out);

/* Reads `op operand` after *acc (the current token being op) and folds it into *acc. */
static rt_status binary_step(parser *p, value *acc, parse_fn operand, binary_fn apply)
{
    tok op = p->t;
    size_t at = p->tstart;
    value rhs = NULL_VALUE;
    rt_status st = lex(p);
    if (!st)
        st = operand(p, &rhs);
    if (st || p->skip) {
        release(acc);
        release(&rhs);
        return st;
    }
    value lhs = *acc;
    return apply(p, op, at, &lhs, &rhs, acc);
}

static rt_status parse_mul(parser *p, value *out)
{
    rt_status st = parse_unary(p, out);
    while (!st && (p->t == T_STAR || p->t == T_SLASH || p->t == T_PCT))
        st = binary_step(p, out, parse_unary, arith);
    return st;
}

static rt_status parse_add(parser *p, value *out)
{
    rt_status st = parse_mul(p, out);
    while (!st && (p->t == T_PLUS || p->t == T_MINUS))
        st = binary_step(p, out, parse_mul, arith);
    return st;
}

static rt_status parse_rel(parser *p, value *out)
{
    rt_status st = parse_add(p, out);
    while (!st && (p->t == T_LT || p->t == T_LE || p->t == T_GT || p->t == T_GE || p->t == T_IN))
        st = binary_step(p, out, parse_add, relational);
    return st;
}

static rt_status parse_eq(parser *p, value *out)
{
    rt_status st = parse_rel(p, out);
    while (!st && (p->t == T_EQ || p->t == T_NE))
        st = binary_step(p, out, parse_rel, equality);
    return st;
}

/* && and ||: the right operand is only checked, not evaluated, when the left decides. */
static rt_status parse_logic(parser *p, value *out, tok op, parse_fn operand)
{
    rt_status st = operand(p, out);
    while (!st && p->t == op) {
        bool decided = !p->skip && truthy(out) == (op == T_OR);
        release(out);
        value rhs = NULL_VALUE;
        p->skip += decided;
        if (!(st = lex(p)))
            st = operand(p, &rhs);
        p->skip -= decided;
        *out = make_bool(decided ? op == T_OR : truthy(&rhs));
        release(&rhs);
    }
    if (st)
        *out = NULL_VALUE; /* only booleans held here: nothing to release */
    return st;
}

static rt_status parse_and(parser *p, value *out)
{
    return parse_logic(p, out, T_AND, parse_eq);
}

static rt_status parse_or(parser *p, value *out)
{
    return parse_logic(p, out, T_OR, parse_and);
}

static rt_status parse_expr(parser *p, value *out)
{
    rt_status st = nesting_check(p);
    *out = NULL_VALUE;
    if (!st && !(st = parse_or(p, out)))
        p->depth--;
    return st;
}

/* Parses and (unless check) evaluates src[0..len). *out holds the result on RT_OK. */
static rt_status eval_slice(const char *src, size_t len, json_t *ctx, bool check, value *out,
                            rt_error *err)
{
    parser p;
    p.src = src;
    p.len = len;
    p.pos = 0;
    p.ctx = ctx;
    p.depth = 0;
    p.skip = check;
    p.err = err;
    p.heap = NULL;
    *out = NULL_VALUE;
    if (len > RT_EXPR_MAX_LEN)
        return fail(&p, RT_EXPR_MAX_LEN, "longer than %d bytes", RT_EXPR_MAX_LEN);
    rt_status st = lex(&p);
    if (!st)
        st = parse_expr(&p, out);
    if (!st && p.t != T_EOF) {
        char buf[48];
        release(out);
        st = fail(&p, p.tstart, "unexpected %s", tok_text(&p, buf, sizeof buf));
    }
    free(p.heap);
    return st;
}

rt_status rt_expr_check(const char *src, rt_error *err)
{
    if (!src)
        return rt_error_set(err, RT_ERR_INVALID, "expression is missing");
    value v;
    rt_status st = eval_slice(src, strnlen(src, RT_EXPR_MAX_LEN + 1), NULL, true, &v, err);
    release(&v);
    return st;
}

rt_status rt_expr_eval(const char *src, json_t *ctx, json_t **out, rt_error *err)
{
    *out = NULL;
    if (!src)
        return rt_error_set(err, RT_ERR_INVALID, "expression is missing");
    value v;
    rt_status st = eval_slice(src, strnlen(src, RT_EXPR_MAX_LEN + 1), ctx, false, &v, err);
    if (st)
        return st;
    *out = to_json_ref(&v);
    return *out ? RT_OK : rt_error_set(err, RT_ERR_NOMEM, "out of memory");
}

/* ---------------------------------------------------------------- templates */

#define NPOS ((size_t)-1)

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char **s, size_t *n)
{
    while (*n && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n && is_space((*s)[*n - 1]))
        (*n)--;
}

static size_t find_open(const char *s, size_t n, size_t from)
{
    const char *o = memmem(s + from, n - from, "${{", 3);
    return o ? (size_t)(o - s) : NPOS;
}

/* Index of the "}}" closing the template whose expression starts at s[i]. Quoted
 * strings are skipped so '}}' inside a literal does not end it; with an unterminated
 * quote the first "}}" is taken, and the parser then reports the string. */
static size_t template_end(const char *s, size_t n, size_t i)
{
    for (size_t k = i; k + 1 < n; k++) {
        char c = s[k];
        if (c == '\'' || c == '"') {
            size_t m = k + 1;
            while (m < n && s[m] != c)
                m += s[m] == '\\' ? 2 : 1;
            if (m >= n)
                break;
            k = m;
        } else if (c == '}' && s[k + 1] == '}') {
            return k;
        }
    }
    const char *e = i < n ? memmem(s + i, n - i, "}}", 2) : NULL;
    return e ? (size_t)(e - s) : NPOS;
}

/* A JSON path on the C stack, formatted only when an error needs it. */
typedef struct pathseg {
    const struct pathseg *up;
    const char *key; /* NULL: array element `index` */
    size_t klen;
    size_t index;
} pathseg;

static size_t path_put(const pathseg *seg, char *buf, size_t n, size_t off)
{
    if (!seg)
        return off;
    off = path_put(seg->up, buf, n, off);
    if (off >= n)
        return off;
    int w = seg->key ? snprintf(buf + off, n - off, "%s%.*s", off ? "." : "", (int)seg->klen,
                                seg->key)
                     : snprintf(buf + off, n - off, "[%zu]", seg->index);
    return w < 0 ? n : off + (size_t)w;
}

typedef struct walk {
    json_t *ctx;        /* borrowed */
    bool check;         /* syntax only: nothing evaluated, no output */
    const char *prefix; /* prepended to paths in messages */
    rt_error *err;
} walk;

/* Prefixes the error already in w->err with the JSON path of seg; returns st. */
static rt_status path_fail(const walk *w, const pathseg *seg, rt_status st)
{
    char path[256];
    snprintf(path, sizeof path, "%s", w->prefix ? w->prefix : "");
    path_put(seg, path, sizeof path, strlen(path));
    if (path[0] && w->err)
        rt_error_prefix(w->err, "%s", path);
    return st;
}

static rt_status eval_inner(const walk *w, const char *s, size_t n, value *out)
{
    trim(&s, &n);
    return eval_slice(s, n, w->ctx, w->check, out, w->err);
}

/* Renders (or checks) one string. *out is a new reference, str itself when it holds no
 * template. */
static rt_status render_string(const walk *w, json_t *str, const pathseg *seg, json_t **out)
{
    const char *s = json_string_value(str);
    size_t n = json_string_length(str);
    size_t open = find_open(s, n, 0);
    rt_status st = RT_OK;
    value v;
    *out = NULL;
    if (open == NPOS) {
        if (!w->check)
            *out = json_incref(str); /* unchanged: share it */
        return RT_OK;
    }
    if (open == 0) {
        size_t end = template_end(s, n, 3);
        if (end != NPOS && end + 2 == n) {
            /* Exactly one template: the result keeps its JSON type. */
            if ((st = eval_inner(w, s + 3, end - 3, &v)))
                return path_fail(w, seg, st);
            if (!w->check && !(*out = to_json_ref(&v)))
                return rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
            release(&v);
            return RT_OK;
        }
    }
    strbuf b = {0};
    size_t pos = 0;
    while (open != NPOS) {
        if (!w->check && !sb_add(&b, s + pos, open - pos))
            break;
        size_t end = template_end(s, n, open + 3);
        if (end == NPOS) {
            st = rt_error_set(w->err, RT_ERR_INVALID, "unterminated ${{ at column %zu",
                              utf8_chars(s, open) + 1);
            break;
        }
        if ((st = eval_inner(w, s + open + 3, end - open - 3, &v)))
            break;
        bool ok = w->check || sb_value(&b, &v, true);
        release(&v);
        if (!ok)
            break;
        pos = end + 2;
        open = find_open(s, n, pos);
    }
    if (!st && !w->check) {
        if (open != NPOS || !sb_add(&b, s + pos, n - pos))
            st = b.too_long ? rt_error_set(w->err, RT_ERR_INVALID,
                                           "rendered string longer than %d bytes",
                                           RT_EXPR_MAX_STRING)
                            : rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
        else if (!(*out = json_stringn_nocheck(b.d ? b.d : "", b.len)))
            st = rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
    }
    free(b.d);
    return st ? path_fail(w, seg, st) : RT_OK;
}

/* Renders (or checks) any value. Containers are copied only from their first changed
 * child on; unchanged children and untemplated containers are shared by reference. */
static rt_status walk_value(const walk *w, json_t *v, const pathseg *seg, json_t **out)
{
    rt_status st;
    *out = NULL;
    if (json_is_string(v))
        return render_string(w, v, seg, out);
    if (json_is_array(v)) {
        json_t *copy = NULL;
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            json_t *child = json_array_get(v, i), *r; /* child borrowed from v */
            pathseg here = {seg, NULL, 0, i};
            if ((st = walk_value(w, child, &here, &r))) {
                json_decref(copy);
                return st;
            }
            if (w->check)
                continue;
            if (r != child && !copy) {
                copy = json_array();
                for (size_t k = 0; copy && k < i; k++)
                    if (json_array_append(copy, json_array_get(v, k))) /* increfs */
                        json_decref(copy), copy = NULL;
                if (!copy) {
                    json_decref(r);
                    return rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
                }
            }
            if (!copy) {
                json_decref(r); /* r is child: drop the extra reference */
            } else if (json_array_append_new(copy, r)) { /* takes r */
                json_decref(copy);
                return rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
            }
        }
        if (!w->check)
            *out = copy ? copy : json_incref(v);
        return RT_OK;
    }
    if (json_is_object(v)) {
        json_t *copy = NULL, *child;
        const char *key;
        size_t klen;
        json_object_keylen_foreach(v, key, klen, child)
        {
            json_t *r;
            pathseg here = {seg, key, klen, 0};
            if ((st = walk_value(w, child, &here, &r))) {
                json_decref(copy);
                return st;
            }
            if (w->check)
                continue;
            if (r != child && !copy) {
                copy = json_object();
                const char *k2;
                size_t k2len;
                json_t *c2;
                json_object_keylen_foreach(v, k2, k2len, c2)
                {
                    if (!copy || k2 == key)
                        break;
                    if (json_object_setn_nocheck(copy, k2, k2len, c2)) /* increfs */
                        json_decref(copy), copy = NULL;
                }
                if (!copy) {
                    json_decref(r);
                    return rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
                }
            }
            if (!copy) {
                json_decref(r); /* r is child: drop the extra reference */
            } else if (json_object_setn_new_nocheck(copy, key, klen, r)) { /* takes r */
                json_decref(copy);
                return rt_error_set(w->err, RT_ERR_NOMEM, "out of memory");
            }
        }
        if (!w->check)
            *out = copy ? copy : json_incref(v);
        return RT_OK;
    }
    if (!w->check)
        *out = json_incref(v); /* numbers, booleans, null: shared */
    return RT_OK;
}

bool rt_template_present(const char *s)
{
    return s && strstr(s, "${{") != NULL;
}

rt_status rt_template_render(json_t *root, json_t *ctx, json_t **out, rt_error *err)
{
    walk w = {ctx, false, NULL, err};
    *out = NULL;
    if (!root)
        return rt_error_set(err, RT_ERR_INVALID, "template value is missing");
    return walk_value(&w, root, NULL, out);
}

rt_status rt_template_check(json_t *root, const char *path_prefix, rt_error *err)
{
    walk w = {NULL, true, path_prefix, err};
    json_t *unused;
    if (!root)
        return rt_error_set(err, RT_ERR_INVALID, "template value is missing");
    return walk_value(&w, root, NULL, &unused);
}

/* The expression of a condition: src trimmed, or the inside of its one template. */
static rt_status condition_expr(const char *src, const char **e, size_t *n, rt_error *err)
{
    if (!src)
        return rt_error_set(err, RT_ERR_INVALID, "condition is missing");
    size_t len = strnlen(src, RT_EXPR_MAX_LEN + 16);
    trim(&src, &len);
    *e = src;
    *n = len;
    if (len < 3 || memcmp(src, "${{", 3) != 0)
        return RT_OK;
    size_t end = template_end(src, len, 3);
    if (end == NPOS)
        return rt_error_set(err, RT_ERR_INVALID, "unterminated ${{ at column 1");
    if (end + 2 != len)
        return rt_error_set(err, RT_ERR_INVALID,
                            "a condition is a bare expression or exactly one ${{ }}, "
                            "with no text around it");
    *e = src + 3;
    *n = end - 3;
    trim(e, n);
    return RT_OK;
}

rt_status rt_expr_condition(const char *src, json_t *ctx, bool *out, rt_error *err)
{
    const char *e = NULL;
    size_t n = 0;
    value v;
    *out = false;
    rt_status st = condition_expr(src, &e, &n, err);
    if (st || (st = eval_slice(e, n, ctx, false, &v, err)))
        return st;
    *out = truthy(&v);
    release(&v);
    return RT_OK;
}

rt_status rt_expr_condition_check(const char *src, rt_error *err)
{
    const char *e = NULL;
    size_t n = 0;
    value v;
    rt_status st = condition_expr(src, &e, &n, err);
    if (st || (st = eval_slice(e, n, NULL, true, &v, err)))
        return st;
    release(&v);
    return RT_OK;
}
