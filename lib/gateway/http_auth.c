/* The credentials of an Authorization header: the one Bearer-token parser
 * (include/chatcore/http.h), for the WebSocket upgrade and the HTTP API alike. */
#include <chatcore/error.h>
#include <chatcore/http.h>
#include <strings.h>

/* token68 (RFC 7235 section 2.1), which RFC 6750 calls b64token: these, then
 * any number of '='. */
static int token68_char(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

static int ows(char c) {
  return c == ' ' || c == '\t';
}

int cc_http_bearer_token(cc_str authorization, cc_str *token) {
  if (!token || !authorization.ptr) return CC_ERR_INVALID;
  const char *p = authorization.ptr, *end = p + authorization.len;
  /* Whitespace around a field value is not part of it (RFC 9110 section 5.5). */
  while (p < end && ows(*p))
    p++;
  while (end > p && ows(end[-1]))
    end--;
  static const char scheme[] = "Bearer";
  size_t sl = sizeof scheme - 1;
  if ((size_t)(end - p) <= sl || strncasecmp(p, scheme, sl) != 0 || p[sl] != ' ')
    return CC_ERR_INVALID;
  p += sl;
  while (p < end && *p == ' ')
    p++;
  const char *start = p;
  while (p < end && token68_char((unsigned char)*p))
    p++;
  if (p == start) return CC_ERR_INVALID;
  while (p < end && *p == '=')
    p++;
  if (p != end) return CC_ERR_INVALID;
  *token = (cc_str){start, (size_t)(end - start)};
  return 0;
}
