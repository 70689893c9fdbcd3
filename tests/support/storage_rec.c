/* The storage callback recorder (storage_rec.h). */
#include "storage_rec.h"

#include <check.h>
#include <string.h>

#include "loop.h"

#include <stdio.h>

void storage_rec_done(void *rec, int err) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
}

void storage_rec_append(void *rec, int err, uint64_t seq, int dup) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->seq = seq;
  r->dup = dup;
}

void storage_rec_entries(void *rec, int err, const cc_entry *e, size_t n, int more) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->n = n;
  r->has_more = more;
  if (n) {
    const cc_entry *last = &e[n - 1];
    snprintf(r->text, sizeof r->text, "%.*s", (int)last->text.len, last->text.ptr);
    snprintf(r->cmid, sizeof r->cmid, "%.*s", (int)last->client_msg_id.len,
             last->client_msg_id.ptr);
    r->seq = last->seq;
  }
}

void storage_rec_chat(void *rec, int err, const cc_chat *c, const cc_member *m,
                      size_t n) {
  storage_rec *r = rec;
  (void)m;
  r->calls++;
  r->err = err;
  r->n = n;
  if (c) r->last_seq = c->last_seq;
}

void storage_rec_read(void *rec, int err, uint64_t read_seq, uint64_t unread) {
  storage_rec *r = rec;
  r->calls++;
  r->err = err;
  r->read_seq = read_seq;
  r->unread = unread;
}

/* ---- calls that wait ---- */

static cc_str S(const char *s) {
  cc_str r = {s, strlen(s)};
  return r;
}

void storage_rec_wait(storage_rec *r) {
  for (int i = 0; r->calls == 0 && i < 1000000; i++)
    test_loop_turn();
  ck_assert_int_eq(r->calls, 1);
}

int st_create(cc_storage *s, const char *id, const char *owner, const char *member) {
  cc_member m[2] = {{S(owner), CC_ROLE_OWNER}, {S(member ? member : ""), CC_ROLE_MEMBER}};
  cc_chat chat = {0};
  chat.chat_id = S(id);
  chat.kind = CC_CHAT_GROUP;
  chat.title = S("title");
  chat.created_by = S(owner);
  storage_rec r = {0};
  s->methods->create_chat(s, &chat, m, member ? 2 : 1, storage_rec_done, &r);
  storage_rec_wait(&r);
  return r.err;
}

void st_append_msg(cc_storage *s, const char *chat, const char *sender, const char *cmid,
                   const char *text, cc_storage_append_cb cb, void *ud) {
  cc_entry e = {0};
  e.kind = CC_ENTRY_MESSAGE;
  e.chat_id = S(chat);
  e.sender_id = S(sender);
  e.client_msg_id = S(cmid);
  e.text = S(text);
  s->methods->append(s, &e, cb, ud);
}

storage_rec st_send_msg(cc_storage *s, const char *chat, const char *sender,
                        const char *cmid, const char *text) {
  storage_rec r = {0};
  st_append_msg(s, chat, sender, cmid, text, storage_rec_append, &r);
  storage_rec_wait(&r);
  return r;
}

storage_rec st_fetch_all(cc_storage *s, const char *chat) {
  storage_rec r = {0};
  s->methods->fetch(s, S(chat), 0, 0, UINT32_MAX, 0, storage_rec_entries, &r);
  storage_rec_wait(&r);
  return r;
}

storage_rec st_get_chat(cc_storage *s, const char *chat) {
  storage_rec r = {0};
  s->methods->get_chat(s, S(chat), storage_rec_chat, &r);
  storage_rec_wait(&r);
  return r;
}

storage_rec st_mark_read(cc_storage *s, const char *user, const char *chat,
                         uint64_t seq) {
  storage_rec r = {0};
  s->methods->mark_read(s, S(user), S(chat), seq, storage_rec_read, &r);
  storage_rec_wait(&r);
  return r;
}
