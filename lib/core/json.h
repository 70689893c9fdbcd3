/* Strict JSON input: the one place chatcore turns JSON text into a tree (the
 * protocol's JSON encoding, JWT headers and claims). cJSON builds the tree; this
 * wrapper refuses what cJSON 1.7.15 lets through and adds what callers need.
 *
 * Refused, although cJSON alone accepts it:
 *   - invalid UTF-8 anywhere (RFC 3629 as in core/utf8.h: no overlongs, no
 *     encoded surrogates, nothing above U+10FFFF), and raw NUL bytes (cJSON
 *     takes any byte <= 0x20 for whitespace and copies NULs into strings, which
 *     then end early);
 *   - raw control characters (< 0x20) inside strings;
 *   - the escapes \u0000 and \u with a non-hex digit (cJSON turns both into a NUL
 *     that silently cuts the string), and unpaired or mis-paired UTF-16
 *     surrogates (cJSON refuses those itself; checked here too so the guarantee
 *     does not depend on the cJSON version);
 *   - numbers outside the RFC 8259 grammar (cJSON takes "01", "1.", "-01");
 *   - a byte-order mark, anything after the value but whitespace, and a top
 *     level that is not an object or an array (RFC 4627's rule);
 *   - duplicate keys in any object (compared byte for byte after unescaping).
 * Bounded: nesting of objects and arrays (cJSON would stop at 1000 and report a
 * syntax error; here the limit is the caller's and says so).
 *
 * Numbers: cJSON keeps a double (valuedouble). A number whose literal has an
 * exponent or more than 15 digits may not be exact as a double, so such a node
 * also keeps its literal, NUL-terminated, in valuestring (freed by cJSON_Delete;
 * cJSON_IsString is still false for it). cc_json_integer reads either exactly:
 * "-9223372036854775807" is that integer, not -2^63.
 *
 * Memory: trees come from cJSON's allocator, which is malloc unless the
 * application installed other hooks with cJSON_InitHooks (process-wide; chatcore
 * never calls it). Free them with cJSON_Delete. Nothing here goes through a
 * cc_mem.
 *
 * Threads: cc_json_parse keeps no state, but cJSON records the position of its
 * last parse error in a process-wide variable (cJSON_GetErrorPtr); concurrent
 * parses race on that word. Nothing in chatcore reads it; do not rely on it. */
#ifndef CC_CORE_JSON_H
#define CC_CORE_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* The deepest nesting cc_json_parse can allow: cJSON's own limit. */
#define CC_JSON_MAX_DEPTH CJSON_NESTING_LIMIT

typedef struct cc_json_err {
  size_t offset;      /* byte offset in the text; SIZE_MAX when not tied to one */
  const char *reason; /* static, e.g. "duplicate key" */
} cc_json_err;

/* Parses `len` bytes at `data` (borrowed; no NUL terminator needed) as one JSON
 * object or array followed by nothing but whitespace, with the checks above.
 * Objects and arrays may nest `max_depth` deep (the outermost is depth 1);
 * values above CC_JSON_MAX_DEPTH mean CC_JSON_MAX_DEPTH.
 * On success returns 0 and *out owns the tree (free with cJSON_Delete). On error
 * *out is unchanged, nothing is left allocated, err (may be NULL) says where and
 * why, and the result is:
 *   CC_ERR_PROTO       malformed, truncated, trailing garbage, not an object or
 *                      array, invalid UTF-8, a refused escape, duplicate key;
 *   CC_ERR_TOO_LARGE   nested deeper than max_depth;
 *   CC_ERR_PROTO_TYPE  a number beyond the range of a double (1e400);
 *   CC_ERR_NOMEM       cJSON's allocator failed (seen through errno == ENOMEM,
 *                      which malloc sets; other hooks may make this CC_ERR_PROTO);
 *   CC_ERR_INVALID     out NULL, or data NULL with len > 0. */
int cc_json_parse(cJSON **out, const uint8_t *data, size_t len, size_t max_depth,
                  cc_json_err *err);

/* cc_json_integer results besides 0. */
#define CC_JSON_NOT_INTEGER 1 /* not a number, or not integral (1.5, 1e-1) */
#define CC_JSON_INT_RANGE 2   /* integral, but |value| > 2^64 - 1 */

/* The exact value of number node `v` (from cc_json_parse) as sign and
 * magnitude, whatever the literal's form: 1e3, 1000.0 and 1000 are all 1000.
 * Returns 0, CC_JSON_NOT_INTEGER or CC_JSON_INT_RANGE; *neg and *mag are set
 * only on success ("-0" may give *neg = 1 with *mag = 0). */
int cc_json_integer(const cJSON *v, int *neg, uint64_t *mag);

#endif
