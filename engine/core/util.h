/* util.h — small shared pieces: clocks, RFC 3339 times, durations, UUIDv7 ids,
 * SHA-256, canonical JSON and whole-file reads. Nothing here touches a server. */
#ifndef RT_UTIL_H
#define RT_UTIL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Wall clock and monotonic clock in milliseconds. */
int64_t rt_now_ms(void);
int64_t rt_mono_ms(void);
int64_t rt_mono_us(void);

/* Formats unix milliseconds as RFC 3339 UTC ("2026-11-22T13:15:00.123Z"); buf >= 32. */
void rt_time_format(int64_t ms, char *buf, size_t len);
/* Parses RFC 3339 ("2026-12-01T00:00:00Z", "...+02:00", fractional seconds allowed). */
rt_status rt_time_parse(const char *s, int64_t *ms, rt_error *err);

/* Parses "500ms", "30s", "15m", "2h", "7d" into milliseconds (> 0, <= 3650d). */
rt_status rt_duration_parse(const char *s, int64_t *ms, rt_error *err);

/* A fresh time-ordered UUIDv7 in its 36-character text form; buf >= 37. */
void rt_uuid7(char *buf);
bool rt_uuid_valid(const char *s);

/* The value of one hex digit (either case), or -1. */
int rt_hex_value(char c);
/* SHA-256 of data as 64 lowercase hex digits; hex >= 65. */
void rt_sha256_hex(const void *data, size_t len, char *hex);

/* Canonical JSON: compact, keys sorted. Caller frees the result with free(). */
char *rt_json_canonical(const json_t *v);

/* Reads a whole file (limit bytes at most). Caller frees *data. */
rt_status rt_file_read(const char *path, size_t limit, char **data, size_t *len, rt_error *err);

/* Fills buf with cryptographically random bytes. */
rt_status rt_random_bytes(void *buf, size_t len);

/* ---- text from outside: a command's output, a server's response -------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when it is invalid:
 * jansson's rules (no overlong forms, no surrogates, nothing above U+10FFFF). */
size_t rt_utf8_seq_len(const unsigned char *s, size_t n);

/* A NUL-terminated copy of s[0..len) in which every byte that does not start a valid UTF-8
 * sequence becomes U+FFFD, because jansson refuses invalid strings and the outside world may
 * send anything. Sets *out_len; caller frees. NULL when out of memory. */
char *rt_utf8_sanitize(const char *s, size_t len, size_t *out_len);

/* A new JSON string holding s[0..len), sanitized as rt_utf8_sanitize does; NULL on no memory. */
json_t *rt_json_text(const char *s, size_t len);

/* Formats milliseconds the way durations are written: "30s" when whole seconds, else "1500ms". */
void rt_duration_format(int64_t ms, char *buf, size_t len);

/* A JSON string, number or boolean as text (an environment variable, a header value): a
 * string's own value (borrowed from v), else the number's JSON spelling written into buf
 * (>= 32 bytes), else "true" or "false". */
const char *rt_json_scalar_text(const json_t *v, char *buf, size_t len);

/* s quoted for an error message: escaped, cut after 64 bytes at a character boundary. */
typedef struct rt_qbuf {
    char s[400];
} rt_qbuf;
const char *rt_quote(rt_qbuf *q, const char *s);
/* "an object", "a string", ... for messages about a JSON value's type. */
const char *rt_json_type_phrase(const json_t *v);

/* The login name running this process ($USER), or fallback when there is none. */
const char *rt_os_user(const char *fallback);

#endif
