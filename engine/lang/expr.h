/* expr.h — the expression language of DESIGN §3 and the ${{ }} templates built on it.
 * Pure and bounded: no loops, no I/O (except reading RATCHET_SECRET_* for `secrets`). */
#ifndef RT_EXPR_H
#define RT_EXPR_H

#include <jansson.h>
#include <stdbool.h>

#include "status.h"

/* Limits that keep evaluation bounded whatever the input. */
#define RT_EXPR_MAX_LEN 4096   /* bytes in one expression */
#define RT_EXPR_MAX_DEPTH 64   /* nesting of parentheses, brackets, calls and unary operators */
#define RT_EXPR_MAX_STRING (1 << 20) /* bytes in a string built by +, a function or a template */

/* The language, in brief (DESIGN §3):
 *   literals   null true false 42 -1.5e3 'single' "double" (escapes \n \t \r \b \f \/ \\ \' \"
 *              \uXXXX)
 *   paths      root.name, x[expr], x['key']; roots are ctx's top-level keys. A name after
 *              '.' may hold '-' between letters/digits (steps.fetch-data.output), so write
 *              `a.b - 1` with spaces to subtract. An unknown path, or any step into null or
 *              into a scalar, gives null. secrets.NAME / secrets['NAME'] read
 *              RATCHET_SECRET_NAME (null when unset) and never ctx.
 *   operators  ! unary-  |  * / %  |  + -  |  < <= > >= in  |  == !=  |  &&  |  ||
 *              (tightest first). Integers stay integers for + - * % and for an exact /;
 *              overflow, division or modulo by zero, and mixing types are errors; + joins
 *              two strings; == compares deeply with 1 == 1.0; && and || short-circuit and
 *              give booleans. `x in y`: element of an array, substring of a string, key of
 *              an object; false when y is null.
 *   functions  len(x) (characters, elements or keys; len(null) is 0), lower(s), upper(s)
 *              (ASCII), default(a, b) (b only when a is null; b is not evaluated
 *              otherwise), sha256(s) (lowercase hex), to_json(x) (compact, keys in
 *              insertion order), from_json(s), now() ("2026-11-22T13:15:00.123Z", UTC).
 * Error messages quote the expression, name a 1-based column (in characters) and the
 * types involved, never a value, so a secret cannot leak through them. */

/* Checks the syntax of one expression (no context needed), including function names and
 * argument counts. On error err->msg names the column:
 * "expression `a +`: column 4: expected a value". */
rt_status rt_expr_check(const char *src, rt_error *err);

/* Evaluates one expression against ctx, a JSON object whose top-level keys are the
 * roots (`event`, `steps`, `run`, `schedule`, `item`, `index`, `async`, ...). ctx is
 * borrowed and may be NULL (every root is then null). The root `secrets.NAME` reads the
 * environment variable RATCHET_SECRET_NAME and is never part of ctx. An unknown path
 * gives null; a type error (e.g. "a" - 1), division by zero or too deep nesting is an
 * error. *out is a new reference, which may be a value inside ctx (json_incref'd, not
 * copied): json_deep_copy it before changing it. */
rt_status rt_expr_eval(const char *src, json_t *ctx, json_t **out, rt_error *err);

/* Truthiness used by `if`: false, null, 0, 0.0, "", [] and {} are false. */
bool rt_expr_truthy(const json_t *v);

/* Evaluates a condition (`if`): a string that is a bare expression or one
 * "${{ expr }}" template (whitespace around either is ignored). */
rt_status rt_expr_condition(const char *src, json_t *ctx, bool *out, rt_error *err);

/* Checks the syntax of a condition in either form, without evaluating it. */
rt_status rt_expr_condition_check(const char *src, rt_error *err);

/* True when s holds at least one "${{". */
bool rt_template_present(const char *s);

/* Renders a JSON value: every string holding ${{ expr }} is evaluated. A string that is
 * exactly one template ("${{ x }}", no text or whitespace outside the braces) keeps the
 * expression's JSON type; otherwise results are interpolated as text (strings raw, other
 * values as compact JSON, null as ""). Objects and arrays are rendered recursively (keys
 * are not templated). An unterminated "${{" is an error. value and ctx are borrowed;
 * *out is a new reference. Parts without templates are shared, not copied: *out may be
 * value itself or contain its children, so json_deep_copy it before changing it.
 * Errors name the JSON path relative to value: "params[1]: expression `a - 'x'`: ...". */
rt_status rt_template_render(json_t *value, json_t *ctx, json_t **out, rt_error *err);

/* Checks every template inside value for syntax, without evaluating. err->msg names
 * the JSON path relative to value, e.g.
 * "with.params[1]: expression `a +`: column 4: expected a value". path_prefix
 * is prepended to paths (may be "" or NULL). */
rt_status rt_template_check(json_t *value, const char *path_prefix, rt_error *err);

#endif
