/* cc_uv_options: where to listen and whether to speak TLS. */
#include <arpa/inet.h>
#include <chatcore/error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "transport/uv/uv_internal.h"

int cc_uv_options_new(cc_uv_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_uv_options *o = cc_calloc(cc_mem_default(), 1, sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  o->backlog = 1024;
  if (cc_uv_options_set_listen(o, "127.0.0.1", 8080) != 0) {
    cc_free(cc_mem_default(), o);
    return CC_ERR_INVALID;
  }
  *out = o;
  return 0;
}

void cc_uv_options_free(cc_uv_options *opt) {
  if (!opt) return;
  SSL_CTX_free(opt->tls);
  cc_free(cc_mem_default(), opt);
}

int cc_uv_options_set_listen(cc_uv_options *opt, const char *host, int port) {
  if (!opt || !host || port < 0 || port > 65535) return CC_ERR_INVALID;
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
  char text[sizeof opt->addr_text];
  if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    snprintf(text, sizeof text, "%s:%d", host, port);
  } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    snprintf(text, sizeof text, "[%s]:%d", host, port);
  } else {
    return CC_ERR_INVALID;
  }
  opt->addr = ss;
  memcpy(opt->addr_text, text, sizeof text);
  return 0;
}

int cc_uv_options_set_listen_address(cc_uv_options *opt, const char *hostport) {
  if (!opt || !hostport) return CC_ERR_INVALID;
  char host[INET6_ADDRSTRLEN];
  const char *port_text;
  size_t hlen;
  if (hostport[0] == '[') {
    const char *end = strchr(hostport, ']');
    if (!end || end[1] != ':') return CC_ERR_INVALID;
    hlen = (size_t)(end - hostport - 1);
    if (hlen == 0 || hlen >= sizeof host) return CC_ERR_INVALID;
    memcpy(host, hostport + 1, hlen);
    port_text = end + 2;
    host[hlen] = '\0';
    /* Brackets are for IPv6 only. */
    if (!strchr(host, ':')) return CC_ERR_INVALID;
  } else {
    const char *colon = strrchr(hostport, ':');
    /* An unbracketed IPv6 address cannot carry a port unambiguously. */
    if (!colon || memchr(hostport, ':', (size_t)(colon - hostport)))
      return CC_ERR_INVALID;
    hlen = (size_t)(colon - hostport);
    if (hlen == 0 || hlen >= sizeof host) return CC_ERR_INVALID;
    memcpy(host, hostport, hlen);
    host[hlen] = '\0';
    port_text = colon + 1;
  }
  if (!*port_text || strlen(port_text) > 5 ||
      strspn(port_text, "0123456789") != strlen(port_text))
    return CC_ERR_INVALID;
  return cc_uv_options_set_listen(opt, host, atoi(port_text));
}

int cc_uv_options_set_backlog(cc_uv_options *opt, int backlog) {
  if (!opt || backlog < 1 || backlog > 65535) return CC_ERR_INVALID;
  opt->backlog = backlog;
  return 0;
}

int cc_uv_options_set_reuse_port(cc_uv_options *opt, int on) {
  if (!opt) return CC_ERR_INVALID;
  opt->reuse_port = on != 0;
  return 0;
}

int cc_uv_options_set_tls(cc_uv_options *opt, const char *cert_file, const char *key_file,
                          char *error, size_t error_cap) {
  if (error && error_cap) error[0] = '\0';
  if (!opt || !cert_file || !key_file) {
    if (error && error_cap)
      snprintf(error, error_cap, "no certificate or key file given");
    return CC_ERR_INVALID;
  }
  int rv;
  SSL_CTX *ctx = cc_uv_tls_ctx_new(cert_file, key_file, &rv, error, error_cap);
  if (!ctx) return rv;
  SSL_CTX_free(opt->tls);
  opt->tls = ctx;
  return 0;
}
