/* Validation of protobuf binary input before protobuf-c unpacks it (pb_validate.h). */
#include "protocol/pb_validate.h"

#include <chatcore/error.h>

#include "core/utf8.h"
#include "protocol/pbjson.h"

#include <stdlib.h>
#include <string.h>

enum { WT_VARINT = 0, WT_64 = 1, WT_LEN = 2, WT_32 = 5 };

/* Reads a varint of at most 10 bytes; returns bytes used, 0 if malformed. */
static inline size_t read_varint(const uint8_t *p, const uint8_t *end, uint64_t *out) {
  if (p < end && p[0] < 0x80) { /* the common case: one byte */
    *out = p[0];
    return 1;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < 10 && p + i < end; i++) {
    uint8_t b = p[i];
    if (i == 9 && b > 1) return 0; /* more than 64 bits */
    v |= (uint64_t)(b & 0x7f) << (7 * i);
    if (!(b & 0x80)) {
      *out = v;
      return i + 1;
    }
  }
  return 0;
}

static int wire_type_of(ProtobufCType t) {
  switch (t) {
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
    return WT_32;
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return WT_64;
  case PROTOBUF_C_TYPE_STRING:
  case PROTOBUF_C_TYPE_BYTES:
  case PROTOBUF_C_TYPE_MESSAGE:
    return WT_LEN;
  default:
    return WT_VARINT;
  }
}

/* Skips one value of wire type wt; returns bytes used or 0. */
static size_t skip_value(int wt, const uint8_t *p, const uint8_t *end) {
  uint64_t v;
  size_t n;
  switch (wt) {
  case WT_VARINT:
    return read_varint(p, end, &v);
  case WT_64:
    return (size_t)(end - p) >= 8 ? 8 : 0;
  case WT_32:
    return (size_t)(end - p) >= 4 ? 4 : 0;
  case WT_LEN:
    n = read_varint(p, end, &v);
    if (!n || v > (uint64_t)(end - p - (ptrdiff_t)n)) return 0;
    return n + (size_t)v;
  default:
    return 0; /* groups (3, 4) and 6, 7 */
  }
}

static int field_err(cc_wire_err *err, const ProtobufCMessageDescriptor *d, unsigned idx,
                     long index, int rv) {
  const char *name = cc_pbjson_field_name(d, idx);
  cc_wire_err_push(err, name ? name : d->fields[idx].name, index);
  return rv;
}

static int check_message(const ProtobufCMessageDescriptor *d, const uint8_t *p,
                         const uint8_t *end, const cc_wire_limits *lim, cc_wire_err *err,
                         unsigned depth) {
  if (depth > lim->max_depth)
    return cc_wire_err_set(err, CC_ERR_TOO_LARGE, "nested deeper than %u",
                           lim->max_depth);
  /* Element counts of repeated fields, by field index; zeroed when the first
   * repeated field shows up (most messages have none). */
  uint32_t counts_small[64];
  uint32_t *counts = NULL;
  /* Singular message fields seen, by field index: protobuf-c merges a repeated
   * occurrence into the first at a cost that grows faster than the input (a
   * 250 KB frame took 37 s), so a second one is refused. */
  uint64_t seen_small = 0;
  uint8_t *seen_big = NULL;
  int rv = 0;
  while (p < end) {
    uint64_t key, v;
    size_t n = read_varint(p, end, &key);
    if (!n) {
      rv = cc_wire_err_set(err, CC_ERR_PROTO, "truncated field key");
      break;
    }
    p += n;
    uint64_t tag = key >> 3;
    int wt = (int)(key & 7);
    if (tag == 0 || tag > 536870911u) {
      rv = cc_wire_err_set(err, CC_ERR_PROTO, "invalid field number");
      break;
    }
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(d, (unsigned)tag);
    if (!f) {
      if (!lim->allow_unknown) {
        rv =
            cc_wire_err_set(err, CC_ERR_PROTO_UNKNOWN, "unknown field %u", (unsigned)tag);
        break;
      }
      n = skip_value(wt, p, end);
      if (!n) {
        rv = cc_wire_err_set(err, CC_ERR_PROTO, "malformed unknown field %u",
                             (unsigned)tag);
        break;
      }
      p += n;
      continue;
    }
    unsigned idx = (unsigned)(f - d->fields);
    int want = wire_type_of(f->type);
    int repeated = f->label == PROTOBUF_C_LABEL_REPEATED;
    int packed = repeated && wt == WT_LEN && want != WT_LEN;
    if (wt != want && !packed) {
      rv = field_err(err, d, idx, -1,
                     cc_wire_err_set(err, CC_ERR_PROTO_TYPE, "wrong wire type %d", wt));
      break;
    }
    uint64_t elems = 1;
    if (wt == WT_LEN) {
      n = read_varint(p, end, &v);
      if (!n || v > (uint64_t)(end - p) - n) {
        rv = field_err(
            err, d, idx, -1,
            cc_wire_err_set(err, CC_ERR_PROTO, "truncated length-delimited field"));
        break;
      }
      const uint8_t *val = p + n;
      size_t len = (size_t)v;
      p = val + len;
      if (packed) {
        if (want == WT_32 || want == WT_64) {
          size_t w = want == WT_32 ? 4 : 8;
          if (len % w) rv = cc_wire_err_set(err, CC_ERR_PROTO, "truncated packed field");
          elems = len / w;
        } else {
          elems = 0;
          for (size_t i = 0; i < len; i++)
            if (!(val[i] & 0x80)) elems++;
          uint64_t tmp;
          const uint8_t *q = val;
          /* Each varint must be well formed (at most 10 bytes, none cut off). */
          while (rv == 0 && q < val + len) {
            size_t k = read_varint(q, val + len, &tmp);
            if (!k) rv = cc_wire_err_set(err, CC_ERR_PROTO, "malformed packed varint");
            q += k;
          }
        }
      } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        if (len > lim->max_field)
          rv = cc_wire_err_set(err, CC_ERR_TOO_LARGE, "string longer than %zu bytes",
                               lim->max_field);
        else if (!cc_utf8_valid(val, len, 0))
          rv =
              cc_wire_err_set(err, CC_ERR_PROTO, "string is not UTF-8 (or contains NUL)");
      } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        if (len > lim->max_field)
          rv = cc_wire_err_set(err, CC_ERR_TOO_LARGE, "bytes longer than %zu",
                               lim->max_field);
      } else {
        if (!repeated) {
          int twice;
          if (d->n_fields <= 64) {
            twice = (seen_small >> idx) & 1;
            seen_small |= 1ull << idx;
          } else {
            if (!seen_big) seen_big = calloc(d->n_fields, 1);
            twice = seen_big ? seen_big[idx] : 0;
            if (seen_big) seen_big[idx] = 1;
          }
          if (twice) {
            rv = cc_wire_err_set(err, CC_ERR_PROTO, "message field given twice");
            field_err(err, d, idx, -1, rv);
            break;
          }
        }
        rv = check_message(f->descriptor, val, val + len, lim, err, depth + 1);
      }
    } else {
      n = skip_value(wt, p, end);
      if (!n) rv = cc_wire_err_set(err, CC_ERR_PROTO, "truncated value");
      p += n;
    }
    if (rv == 0 && repeated && !counts) {
      if (d->n_fields > 64) {
        counts = calloc(d->n_fields, sizeof *counts);
        if (!counts) rv = cc_wire_err_set(err, CC_ERR_NOMEM, "out of memory");
      } else {
        counts = counts_small;
        memset(counts, 0, d->n_fields * sizeof *counts);
      }
    }
    if (rv == 0 && repeated) {
      uint64_t total = counts[idx] + elems;
      if (total > lim->max_repeated)
        rv = cc_wire_err_set(err, CC_ERR_TOO_LARGE, "more than %zu elements",
                             lim->max_repeated);
      else
        counts[idx] = (uint32_t)total;
    }
    if (rv) {
      field_err(err, d, idx, -1, rv);
      break;
    }
  }
  if (counts && counts != counts_small) free(counts);
  free(seen_big);
  return rv;
}

int cc_pbcheck(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
               const cc_wire_limits *lim, cc_wire_err *err) {
  if (!desc || (!data && len) || !lim)
    return cc_wire_err_set(err, CC_ERR_INVALID, "invalid argument");
  static const uint8_t empty[1];
  if (!data) data = empty; /* NULL + 0 is undefined behaviour in C */
  return check_message(desc, data, data + len, lim, err, 1);
}
