/* What both ends of the seam across a queue share (seam.h). */
#include "link/seam.h"

#include <chatcore/error.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "protocol/wire.h"

size_t seam_subject(char *out, size_t cap, const char *prefix, cc_str id) {
  size_t pl = strlen(prefix);
  if (pl + id.len + 1 > cap) return 0;
  memcpy(out, prefix, pl);
  for (size_t i = 0; i < id.len; i++)
    out[pl + i] = id.ptr[i] == '.' ? '~' : id.ptr[i];
  out[pl + id.len] = '\0';
  return pl + id.len;
}

size_t seam_subject_id(char *out, size_t cap, const char *prefix, uint64_t id) {
  int n = snprintf(out, cap, "%s%" PRIu64, prefix, id);
  return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

uint64_t seam_subject_tail_id(cc_str subject, const char *prefix) {
  size_t pl = strlen(prefix);
  if (subject.len <= pl || subject.len - pl > 20 || memcmp(subject.ptr, prefix, pl) != 0)
    return 0;
  uint64_t id = 0;
  for (size_t i = pl; i < subject.len; i++) {
    char c = subject.ptr[i];
    if (c < '0' || c > '9' || id > (UINT64_MAX - 9) / 10) return 0;
    id = id * 10 + (uint64_t)(c - '0');
  }
  return id;
}

char **seam_id_list(const cc_mem *mem, const cc_str *ids, size_t n, size_t max) {
  if (n == 0) return NULL;
  char **list = cc_calloc(mem, n, sizeof *list + max + 1);
  if (!list) return NULL;
  char *strings = (char *)(list + n);
  for (size_t i = 0; i < n; i++) {
    list[i] = strings + i * (max + 1);
    size_t len = ids[i].len <= max ? ids[i].len : 0;
    memcpy(list[i], ids[i].ptr, len);
    list[i][len] = '\0';
  }
  return list;
}

int seam_publish(cc_queue *q, const char *subject, const ProtobufCMessage *msg,
                 const cc_mem *mem) {
  size_t n = protobuf_c_message_get_packed_size(msg);
  uint8_t small[512];
  uint8_t *buf = n <= sizeof small ? small : cc_malloc(mem, n);
  if (!buf) return CC_ERR_NOMEM;
  protobuf_c_message_pack(msg, buf);
  q->methods->publish(q, (cc_str){subject, strlen(subject)}, buf, n, (cc_str){"", 0},
                      NULL, NULL);
  if (buf != small) cc_free(mem, buf);
  return 0;
}

ProtobufCMessage *seam_unpack(const ProtobufCMessageDescriptor *desc,
                              const cc_queue_msg *m, const cc_mem *mem) {
  ProtobufCAllocator a;
  cc_wire_allocator_init(&a, mem);
  ProtobufCMessage *msg = protobuf_c_message_unpack(desc, &a, m->len, m->data);
  if (!msg)
    cc_log(CC_LOG_WARN, "seam: a malformed %s on %.*s: dropped", desc->short_name,
           (int)(m->subject.len > 200 ? 200 : m->subject.len), m->subject.ptr);
  return msg;
}

void seam_free(ProtobufCMessage *msg, const cc_mem *mem) {
  if (!msg) return;
  ProtobufCAllocator a;
  cc_wire_allocator_init(&a, mem);
  protobuf_c_message_free_unpacked(msg, &a);
}

int seam_peers_init(seam_peers *p, const cc_mem *mem) {
  p->mem = mem;
  return cc_table_init(&p->t, mem);
}

void seam_peers_destroy(seam_peers *p) {
  cc_tnode *n;
  while ((n = cc_table_oldest(&p->t)) != NULL) {
    cc_table_remove(&p->t, n);
    cc_free(p->mem, n);
  }
  cc_table_destroy(&p->t);
}

static seam_peer *find(const seam_peers *p, uint64_t id) {
  return (seam_peer *)cc_table_find(&p->t, cc_table_hash(&p->t, &id, sizeof id), &id,
                                    sizeof id);
}

void seam_peers_heard(seam_peers *p, uint64_t id, uint64_t now) {
  seam_peer *e = find(p, id);
  if (!e) {
    e = cc_calloc(p->mem, 1, sizeof *e);
    if (!e) return; /* unheard: its sessions are closed as if it were gone */
    e->id = id;
    e->node.key = (const uint8_t *)&e->id;
    e->node.key_len = sizeof e->id;
    e->node.hash = cc_table_hash(&p->t, &id, sizeof id);
    if (cc_table_insert(&p->t, &e->node) != 0) {
      cc_free(p->mem, e);
      return;
    }
  }
  e->heard_ms = now;
  cc_table_touch(&p->t, &e->node); /* least recently heard at the oldest end */
}

int seam_peers_alive(const seam_peers *p, uint64_t id, uint64_t now,
                     uint64_t timeout_ms) {
  const seam_peer *e = find(p, id);
  return e && now - e->heard_ms <= timeout_ms;
}

void seam_peers_expire(seam_peers *p, uint64_t now, uint64_t timeout_ms,
                       void (*gone)(void *arg, uint64_t id), void *arg) {
  cc_tnode *n;
  while ((n = cc_table_oldest(&p->t)) != NULL &&
         now - ((seam_peer *)n)->heard_ms > timeout_ms) {
    uint64_t id = ((seam_peer *)n)->id;
    cc_table_remove(&p->t, n);
    cc_free(p->mem, n);
    if (gone) gone(arg, id);
  }
}
