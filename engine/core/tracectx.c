/* tracectx.c — W3C traceparent parsing and formatting, and derived ids. */
#include "tracectx.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

static int lower_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* n bytes from 2n lowercase hex digits; false on anything else. */
static bool hex_bytes(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = lower_hex(s[2 * i]), lo = lower_hex(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

bool rt_traceparent_parse(const char *s, size_t len, rt_trace_ctx *out)
{
    if (!s)
        return false;
    while (len > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len < RT_TRACEPARENT_LEN)
        return false;
    uint8_t version;
    if (!hex_bytes(s, &version, 1) || version == 0xff)
        return false;
    if (version == 0 && len != RT_TRACEPARENT_LEN)
        return false;
    /* A later version keeps this prefix; what follows it must start a new field. */
    if (len > RT_TRACEPARENT_LEN && s[RT_TRACEPARENT_LEN] != '-')
        return false;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    rt_trace_ctx c;
    if (!hex_bytes(s + 3, c.trace_id, 16) || !hex_bytes(s + 36, c.span_id, 8) || !hex_bytes(s + 53, &c.flags, 1))
        return false;
    if (all_zero(c.trace_id, 16) || all_zero(c.span_id, 8))
        return false;
    /* Only the sampled bit is known; ratchet passes contexts on as version 00, which
     * must not carry the rest (found by fuzz_traceparent) */
    c.flags &= RT_TRACE_FLAG_SAMPLED;
    *out = c;
    return true;
}

void rt_trace_hex(const uint8_t *bytes, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n] = '\0';
}

void rt_traceparent_format(const rt_trace_ctx *c, char *buf)
{
    char t[33], p[17];
    rt_trace_hex(c->trace_id, 16, t);
    rt_trace_hex(c->span_id, 8, p);
    snprintf(buf, RT_TRACEPARENT_LEN + 1, "00-%s-%s-%02x", t, p, c->flags & RT_TRACE_FLAG_SAMPLED);
}

bool rt_tracestate_valid(const char *s, size_t len)
{
    if (!s || len == 0 || len > RT_TRACESTATE_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

void rt_trace_derive(uint8_t *out, size_t n, const char *a, const char *b, long c)
{
    char tail[32];
    int tn = snprintf(tail, sizeof tail, "%ld", c);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
        EVP_DigestUpdate(ctx, "ratchet-trace", 14); /* with its NUL: a separator */
        EVP_DigestUpdate(ctx, a ? a : "", strlen(a ? a : "") + 1);
        EVP_DigestUpdate(ctx, b ? b : "", strlen(b ? b : "") + 1);
        EVP_DigestUpdate(ctx, tail, (size_t)tn);
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    }
    EVP_MD_CTX_free(ctx);
    if (n > 32)
        n = 32;
    if (mdlen < n)
        memset(md, 0, sizeof md);
    memcpy(out, md, n);
    if (all_zero(out, n))
        out[n - 1] = 1;
}
