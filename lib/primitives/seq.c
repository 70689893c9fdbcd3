/* Per-chat sequence allocation: a hash table of chat -> last number, with LRU
 * eviction of idle chats (see include/chatcore/seq.h for the contract). */
#include <chatcore/error.h>
#include <chatcore/seq.h>

#include "core/clock.h"
#include "core/mem.h"
#include "core/table.h"

#include <string.h>

struct cc_seq_options {
  size_t max_chats;
  uint64_t min_idle_ns;
  cc_clock_fn clock;
  void *clock_data;
};

typedef struct chat_counter {
  cc_tnode node; /* key points at `id` */
  uint64_t last;
  uint64_t used_at_ns;
  char id[];
} chat_counter;

struct cc_seq {
  cc_mem mem;
  cc_seq_options opt;
  cc_table chats;
};

#define MAX_CHAT_ID_LEN 65535u

static void options_defaults(cc_seq_options *o) {
  o->max_chats = 1000000;
  o->min_idle_ns = 60ull * 1000000000ull;
  o->clock = cc_clock_monotonic_hook;
  o->clock_data = NULL;
}

int cc_seq_options_new(cc_seq_options **out) {
  if (!out) return CC_ERR_INVALID;
  cc_seq_options *o = cc_malloc(cc_mem_default(), sizeof *o);
  if (!o) return CC_ERR_NOMEM;
  options_defaults(o);
  *out = o;
  return 0;
}

void cc_seq_options_free(cc_seq_options *opt) {
  cc_free(cc_mem_default(), opt);
}

int cc_seq_options_set_max_chats(cc_seq_options *opt, size_t max_chats) {
  if (!opt || max_chats < 1) return CC_ERR_INVALID;
  opt->max_chats = max_chats;
  return 0;
}

int cc_seq_options_set_min_idle_ms(cc_seq_options *opt, uint64_t ms) {
  if (!opt || ms < 1 || ms > UINT64_MAX / 1000000u) return CC_ERR_INVALID;
  opt->min_idle_ns = ms * 1000000u;
  return 0;
}

int cc_seq_options_set_clock(cc_seq_options *opt, cc_clock_fn fn, void *user_data) {
  if (!opt) return CC_ERR_INVALID;
  opt->clock = fn ? fn : cc_clock_monotonic_hook;
  opt->clock_data = fn ? user_data : NULL;
  return 0;
}

int cc_seq_new(cc_seq **out, const cc_seq_options *opt, const cc_mem *mem) {
  cc_mem m;
  if (!out || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_seq *s = cc_calloc(&m, 1, sizeof *s);
  if (!s) return CC_ERR_NOMEM;
  s->mem = m;
  if (opt)
    s->opt = *opt;
  else
    options_defaults(&s->opt);
  if (cc_table_init(&s->chats, &s->mem) != 0) {
    cc_free(&m, s);
    return CC_ERR_NOMEM;
  }
  *out = s;
  return 0;
}

void cc_seq_free(cc_seq *seq) {
  if (!seq) return;
  cc_tnode *n;
  while ((n = cc_table_oldest(&seq->chats)) != NULL) {
    cc_table_remove(&seq->chats, n);
    cc_free(&seq->mem, n);
  }
  cc_table_destroy(&seq->chats);
  cc_mem m = seq->mem;
  cc_free(&m, seq);
}

static int valid_chat(const char *chat, size_t len) {
  return chat && len >= 1 && len <= MAX_CHAT_ID_LEN;
}

/* Evicts at most one idle chat when over the cap; called on every use so the
 * table shrinks back as fast as it can grow. */
static void evict_idle(cc_seq *s, uint64_t now) {
  if (s->chats.count <= s->opt.max_chats) return;
  chat_counter *oldest = (chat_counter *)cc_table_oldest(&s->chats);
  if (now - oldest->used_at_ns < s->opt.min_idle_ns) return;
  cc_table_remove(&s->chats, &oldest->node);
  cc_free(&s->mem, oldest);
}

static chat_counter *find(const cc_seq *s, const char *chat, size_t len) {
  uint64_t h = cc_table_hash(&s->chats, chat, len);
  return (chat_counter *)cc_table_find(&s->chats, h, chat, len);
}

int cc_seq_next(cc_seq *seq, const char *chat, size_t chat_len, uint64_t *out_seq) {
  if (!seq || !valid_chat(chat, chat_len) || !out_seq) return CC_ERR_INVALID;
  chat_counter *c = find(seq, chat, chat_len);
  if (!c) return CC_ERR_SEQ_UNSEEDED;
  if (c->last == UINT64_MAX) return CC_ERR_TOO_LARGE;
  uint64_t now = seq->opt.clock(seq->opt.clock_data);
  c->used_at_ns = now;
  cc_table_touch(&seq->chats, &c->node);
  *out_seq = ++c->last;
  evict_idle(seq, now);
  return 0;
}

int cc_seq_seed(cc_seq *seq, const char *chat, size_t chat_len, uint64_t high_water) {
  if (!seq || !valid_chat(chat, chat_len)) return CC_ERR_INVALID;
  uint64_t now = seq->opt.clock(seq->opt.clock_data);
  chat_counter *c = find(seq, chat, chat_len);
  if (c) {
    if (high_water > c->last) c->last = high_water;
  } else {
    c = cc_malloc(&seq->mem, sizeof *c + chat_len);
    if (!c) return CC_ERR_NOMEM;
    memcpy(c->id, chat, chat_len);
    c->node.key = (const uint8_t *)c->id;
    c->node.key_len = (uint32_t)chat_len;
    c->node.hash = cc_table_hash(&seq->chats, chat, chat_len);
    c->last = high_water;
    if (cc_table_insert(&seq->chats, &c->node) != 0) {
      cc_free(&seq->mem, c);
      return CC_ERR_NOMEM;
    }
  }
  c->used_at_ns = now;
  cc_table_touch(&seq->chats, &c->node);
  evict_idle(seq, now);
  return 0;
}

int cc_seq_last(const cc_seq *seq, const char *chat, size_t chat_len,
                uint64_t *out_last) {
  if (!seq || !valid_chat(chat, chat_len) || !out_last) return CC_ERR_INVALID;
  const chat_counter *c = find(seq, chat, chat_len);
  if (!c) return CC_ERR_SEQ_UNSEEDED;
  *out_last = c->last;
  return 0;
}

size_t cc_seq_size(const cc_seq *seq) {
  return seq ? seq->chats.count : 0;
}
