/* Trusted proxies and X-Forwarded-For (lib/gateway/client_addr.h). */
#include "gateway/client_addr.h"

#include <arpa/inet.h>
#include <chatcore/error.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static int is_v4(const uint8_t addr[16]) {
  return memcmp(addr, v4_mapped_prefix, 12) == 0;
}

static int ows(char c) {
  return c == ' ' || c == '\t';
}

/* Exactly `len` bytes as an address of either family, nothing around it. */
static int parse_exact(const char *p, size_t len, uint8_t out[16]) {
  char buf[CC_IP_TEXT_MAX];
  if (len == 0 || len >= sizeof buf) return CC_ERR_INVALID;
  memcpy(buf, p, len);
  buf[len] = '\0';
  struct in_addr a4;
  if (inet_pton(AF_INET, buf, &a4) == 1) {
    memcpy(out, v4_mapped_prefix, 12);
    memcpy(out + 12, &a4, 4);
    return 0;
  }
  return inet_pton(AF_INET6, buf, out) == 1 ? 0 : CC_ERR_INVALID;
}

static int all_digits(const char *p, size_t len) {
  if (len == 0 || len > 5) return 0;
  for (size_t i = 0; i < len; i++)
    if (p[i] < '0' || p[i] > '9') return 0;
  return 1;
}

int cc_ip_parse(const char *text, size_t len, uint8_t out[16]) {
  if (!text || !out) return CC_ERR_INVALID;
  const char *p = text, *end = text + len;
  while (p < end && ows(*p))
    p++;
  while (end > p && ows(end[-1]))
    end--;
  if (p < end && *p == '[') { /* "[v6]" or "[v6]:port" */
    const char *close = memchr(p, ']', (size_t)(end - p));
    if (!close) return CC_ERR_INVALID;
    if (close + 1 != end &&
        (close[1] != ':' || !all_digits(close + 2, (size_t)(end - close - 2))))
      return CC_ERR_INVALID;
    uint8_t a[16];
    if (parse_exact(p + 1, (size_t)(close - p - 1), a) != 0 || is_v4(a))
      return CC_ERR_INVALID;
    memcpy(out, a, 16);
    return 0;
  }
  if (parse_exact(p, (size_t)(end - p), out) == 0) return 0;
  /* "a.b.c.d:port": one colon only, or it would be an IPv6 address. */
  const char *colon = memchr(p, ':', (size_t)(end - p));
  if (!colon || memchr(colon + 1, ':', (size_t)(end - colon - 1)) ||
      !all_digits(colon + 1, (size_t)(end - colon - 1)))
    return CC_ERR_INVALID;
  return parse_exact(p, (size_t)(colon - p), out);
}

static void clear_host_bits(uint8_t addr[16], unsigned bits) {
  for (unsigned i = 0; i < 16; i++) {
    unsigned keep = bits > 8 * i ? bits - 8 * i : 0;
    if (keep < 8) addr[i] &= (uint8_t)(0xff00u >> keep);
  }
}

int cc_cidr_parse(const char *text, cc_cidr *out) {
  if (!text || !out) return CC_ERR_INVALID;
  const char *slash = strchr(text, '/');
  size_t alen = slash ? (size_t)(slash - text) : strlen(text);
  uint8_t addr[16];
  /* No brackets, ports or spaces here: a flag value is written by hand. */
  if (alen == 0 || strpbrk(text, "[] \t") || parse_exact(text, alen, addr) != 0)
    return CC_ERR_INVALID;
  int v4 = is_v4(addr) && !strchr(text, ':');
  unsigned max = v4 ? 32 : 128, bits = max;
  if (slash) {
    const char *b = slash + 1;
    size_t blen = strlen(b);
    if (blen == 0 || blen > 3 || !all_digits(b, blen) || (blen > 1 && b[0] == '0'))
      return CC_ERR_INVALID;
    bits = (unsigned)atoi(b);
    if (bits > max) return CC_ERR_INVALID;
  }
  if (v4) bits += 96;
  clear_host_bits(addr, bits);
  memcpy(out->addr, addr, 16);
  out->bits = (uint8_t)bits;
  return 0;
}

int cc_cidr_contains(const cc_cidr *net, const uint8_t addr[16]) {
  uint8_t a[16];
  memcpy(a, addr, 16);
  clear_host_bits(a, net->bits);
  return memcmp(a, net->addr, 16) == 0;
}

void cc_ip_format(const uint8_t addr[16], char out[CC_IP_TEXT_MAX]) {
  if (is_v4(addr))
    inet_ntop(AF_INET, addr + 12, out, CC_IP_TEXT_MAX);
  else
    inet_ntop(AF_INET6, addr, out, CC_IP_TEXT_MAX);
}

void cc_ip_limit_key(const uint8_t addr[16], char out[CC_IP_TEXT_MAX]) {
  if (is_v4(addr)) {
    cc_ip_format(addr, out);
    return;
  }
  uint8_t net[16];
  memcpy(net, addr, 16);
  clear_host_bits(net, 64);
  char text[CC_IP_TEXT_MAX];
  inet_ntop(AF_INET6, net, text, sizeof text);
  /* At most "ffff:ffff:ffff:ffff::": the suffix always fits. */
  size_t n = strlen(text);
  if (n > CC_IP_TEXT_MAX - 4) n = CC_IP_TEXT_MAX - 4;
  memcpy(out, text, n);
  memcpy(out + n, "/64", 4);
}

static int trusted_addr(const cc_cidr *trusted, size_t n, const uint8_t addr[16]) {
  for (size_t i = 0; i < n; i++)
    if (cc_cidr_contains(&trusted[i], addr)) return 1;
  return 0;
}

int cc_forwarded_client(const cc_cidr *trusted, size_t n, const uint8_t peer[16],
                        const cc_str *xff, size_t n_xff, uint8_t out[16]) {
  if (!trusted_addr(trusted, n, peer)) return 0;
  /* The last hop we trust: the peer, then each trusted entry walking left. */
  uint8_t hop[16];
  memcpy(hop, peer, 16);
  for (size_t h = n_xff; h-- > 0;) {
    const char *start = xff[h].ptr, *end = start ? start + xff[h].len : NULL;
    while (start && end > start) {
      const char *comma = end;
      while (comma > start && comma[-1] != ',')
        comma--;
      uint8_t a[16];
      int empty = 1;
      for (const char *q = comma; q < end; q++)
        if (!ows(*q)) empty = 0;
      if (!empty) {
        if (cc_ip_parse(comma, (size_t)(end - comma), a) != 0) goto done;
        memcpy(hop, a, 16);
        if (!trusted_addr(trusted, n, a)) goto done;
      }
      end = comma > start ? comma - 1 : start;
    }
  }
done:
  memcpy(out, hop, 16);
  return memcmp(hop, peer, 16) != 0;
}
