/* curl_once.h — libcurl's process-wide initialisation, done once for every user of it
 * (the http and email steps, the OpenTelemetry exporter): curl_global_init must not run
 * twice at the same time from two threads. Also the URL check those steps share. */
#ifndef RT_CURL_ONCE_H
#define RT_CURL_ONCE_H

#include <curl/curl.h>
#include <stdbool.h>

#include "status.h"

/* Initialises libcurl on the first call (from any thread); returns its result, CURLE_OK
 * when libcurl is ready. */
CURLcode rt_curl_init(void);

/* A step's "url": absolute, its scheme one of the two given (curl speaks many protocols,
 * file:// and gopher:// among them, that a step has no business reaching), with a host.
 * Errors read `<what> "url" is not <shape>`, `... must use <a> or <b>, not <scheme>`,
 * `... has no host`. *second (may be NULL): whether the scheme is the second one. */
rt_status rt_curl_check_url(const char *url, const char *what, const char *shape, const char *a, const char *b,
                            bool *second, rt_error *err);

#endif
