/* Public protocol API (include/chatcore/protocol.h) over the internal wire layer. */
#include <chatcore/error.h>
#include <chatcore/protocol.h>

#include "core/mem.h"
#include "protocol/wire.h"

#include <stdio.h>
#include <string.h>

const char *cc_protocol_subprotocol(cc_encoding enc) {
  switch (enc) {
  case CC_ENCODING_PROTOBUF:
    return CC_PROTOCOL_SUBPROTOCOL_PROTOBUF;
  case CC_ENCODING_JSON:
    return CC_PROTOCOL_SUBPROTOCOL_JSON;
  }
  return NULL;
}

int cc_protocol_encoding_from_subprotocol(const char *name, size_t len,
                                          cc_encoding *out) {
  if (!name || !out) return CC_ERR_INVALID;
  if (len == sizeof CC_PROTOCOL_SUBPROTOCOL_PROTOBUF - 1 &&
      memcmp(name, CC_PROTOCOL_SUBPROTOCOL_PROTOBUF, len) == 0) {
    *out = CC_ENCODING_PROTOBUF;
    return 0;
  }
  if (len == sizeof CC_PROTOCOL_SUBPROTOCOL_JSON - 1 &&
      memcmp(name, CC_PROTOCOL_SUBPROTOCOL_JSON, len) == 0) {
    *out = CC_ENCODING_JSON;
    return 0;
  }
  return CC_ERR_UNSUPPORTED;
}

static int is_ows(char c) {
  return c == ' ' || c == '\t';
}

int cc_protocol_select_subprotocol(const char *header, size_t len, cc_encoding *out) {
  if (!out) return CC_ERR_INVALID;
  if (!header) len = 0;
  int offered = 0;
  size_t i = 0;
  while (i < len) {
    size_t start = i;
    while (i < len && header[i] != ',')
      i++;
    size_t end = i;
    while (start < end && is_ows(header[start]))
      start++;
    while (end > start && is_ows(header[end - 1]))
      end--;
    if (end > start) {
      offered = 1;
      cc_encoding enc;
      if (cc_protocol_encoding_from_subprotocol(header + start, end - start, &enc) == 0) {
        *out = enc;
        return 1;
      }
    }
    i++; /* past the comma */
  }
  if (offered) return CC_ERR_UNSUPPORTED;
  *out = CC_ENCODING_JSON;
  return 0;
}

/* ------------------------------------------------------------------------- */

struct cc_protocol_limits {
  cc_mem mem;
  cc_wire_limits lim;
};

int cc_protocol_limits_new(cc_protocol_limits **out, cc_protocol_kind kind,
                           const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  if (kind != CC_PROTOCOL_CLIENT_FRAME && kind != CC_PROTOCOL_SERVER_FRAME)
    return CC_ERR_INVALID;
  cc_protocol_limits *l = cc_malloc(&m, sizeof *l);
  if (!l) return CC_ERR_NOMEM;
  l->mem = m;
  l->lim =
      kind == CC_PROTOCOL_CLIENT_FRAME ? cc_wire_limits_client : cc_wire_limits_server;
  *out = l;
  return 0;
}

void cc_protocol_limits_free(cc_protocol_limits *limits) {
  if (!limits) return;
  cc_mem m = limits->mem;
  cc_free(&m, limits);
}

int cc_protocol_limits_set_max_frame(cc_protocol_limits *limits, size_t bytes) {
  if (!limits || bytes == 0) return CC_ERR_INVALID;
  limits->lim.max_frame = bytes;
  return 0;
}

int cc_protocol_limits_set_max_field(cc_protocol_limits *limits, size_t bytes) {
  if (!limits || bytes == 0) return CC_ERR_INVALID;
  limits->lim.max_field = bytes;
  return 0;
}

int cc_protocol_limits_set_max_repeated(cc_protocol_limits *limits, size_t count) {
  if (!limits || count == 0) return CC_ERR_INVALID;
  limits->lim.max_repeated = count;
  return 0;
}

int cc_protocol_limits_set_max_depth(cc_protocol_limits *limits, uint32_t depth) {
  if (!limits || depth == 0) return CC_ERR_INVALID;
  limits->lim.max_depth = depth;
  return 0;
}

int cc_protocol_limits_set_allow_unknown(cc_protocol_limits *limits, int allow) {
  if (!limits || (allow != 0 && allow != 1)) return CC_ERR_INVALID;
  limits->lim.allow_unknown = allow;
  return 0;
}

/* ------------------------------------------------------------------------- */

static int decode_checked(ProtobufCMessage **out, cc_protocol_kind kind, cc_encoding enc,
                          const uint8_t *data, size_t len,
                          const cc_protocol_limits *limits, const cc_mem *mem,
                          cc_wire_err *err) {
  const cc_wire_limits *lim = limits ? &limits->lim : NULL;
  int rv;
  if (kind == CC_PROTOCOL_CLIENT_FRAME) {
    Chatcore__V1__ClientFrame *f = NULL;
    rv = cc_wire_decode_client(&f, enc, data, len, lim, mem, err);
    if (rv == 0 && (rv = cc_wire_check_client(f, err)) != 0) cc_wire_free_client(f, mem);
    if (rv == 0) *out = &f->base;
    return rv;
  }
  if (kind == CC_PROTOCOL_SERVER_FRAME) {
    Chatcore__V1__ServerFrame *f = NULL;
    rv = cc_wire_decode_server(&f, enc, data, len, lim, mem, err);
    if (rv == 0) *out = &f->base;
    return rv;
  }
  return cc_wire_err_set(err, CC_ERR_INVALID, "unknown frame kind");
}

static void report(const cc_wire_err *err, int rv, char *errmsg, size_t size) {
  if (!errmsg || size == 0) return;
  if (rv == 0)
    errmsg[0] = '\0';
  else
    cc_wire_err_format(err, errmsg, size);
}

int cc_protocol_validate(cc_protocol_kind kind, cc_encoding enc, const uint8_t *data,
                         size_t len, const cc_protocol_limits *limits, char *errmsg,
                         size_t errmsg_size) {
  cc_wire_err err = {0, "", ""};
  ProtobufCMessage *m = NULL;
  int rv = decode_checked(&m, kind, enc, data, len, limits, NULL, &err);
  cc_wire_free(m, NULL);
  report(&err, rv, errmsg, errmsg_size);
  return rv;
}

int cc_protocol_transcode(cc_buf **out, cc_protocol_kind kind, cc_encoding from,
                          const uint8_t *data, size_t len, cc_encoding to,
                          const cc_protocol_limits *limits, const cc_mem *mem,
                          char *errmsg, size_t errmsg_size) {
  cc_wire_err err = {0, "", ""};
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) {
    report(&err, cc_wire_err_set(&err, CC_ERR_INVALID, "invalid argument"), errmsg,
           errmsg_size);
    return CC_ERR_INVALID;
  }
  if (to != CC_ENCODING_PROTOBUF && to != CC_ENCODING_JSON) {
    report(&err, cc_wire_err_set(&err, CC_ERR_INVALID, "unknown output encoding"), errmsg,
           errmsg_size);
    return CC_ERR_INVALID;
  }
  ProtobufCMessage *msg = NULL;
  int rv = decode_checked(&msg, kind, from, data, len, limits, &m, &err);
  if (rv == 0) {
    rv = cc_wire_encode(out, msg, to, 0, &m);
    if (rv) cc_wire_err_set(&err, rv, "cannot encode: %s", cc_strerror(rv));
    cc_wire_free(msg, &m);
  }
  report(&err, rv, errmsg, errmsg_size);
  return rv;
}

/* ------------------------------------------------------------------------- */

int cc_protocol_error_code_for(int err) {
  if (err == 0) return CC_PROTOCOL_ERROR_UNSPECIFIED;
  if (err <= CC_ERR_JWT_MALFORMED && err >= CC_ERR_JWT_AUDIENCE)
    return CC_PROTOCOL_ERROR_UNAUTHORIZED;
  switch (err) {
  case CC_ERR_PROTO:
    return CC_PROTOCOL_ERROR_MALFORMED;
  case CC_ERR_PROTO_TYPE:
  case CC_ERR_INVALID:
    return CC_PROTOCOL_ERROR_BAD_REQUEST;
  case CC_ERR_PROTO_UNKNOWN:
    return CC_PROTOCOL_ERROR_UNKNOWN_COMMAND;
  case CC_ERR_TOO_LARGE:
    return CC_PROTOCOL_ERROR_TOO_LARGE;
  case CC_ERR_RATE_LIMITED:
    return CC_PROTOCOL_ERROR_RATE_LIMITED;
  case CC_ERR_NOT_FOUND:
    return CC_PROTOCOL_ERROR_NOT_FOUND;
  case CC_ERR_EXISTS:
    return CC_PROTOCOL_ERROR_CONFLICT;
  case CC_ERR_JWT_KEY:
    return CC_PROTOCOL_ERROR_INTERNAL; /* server misconfiguration */
  case CC_ERR_AGAIN:
  case CC_ERR_TIMEOUT:
  case CC_ERR_BACKEND:
  case CC_ERR_IO:
  case CC_ERR_CLOSED:
    return CC_PROTOCOL_ERROR_UNAVAILABLE;
  default:
    return CC_PROTOCOL_ERROR_INTERNAL;
  }
}

const char *cc_protocol_error_code_name(int code) {
  return cc_wire_error_code_name((Chatcore__V1__ErrorCode)code);
}
