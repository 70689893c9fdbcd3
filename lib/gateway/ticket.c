/* Connect tickets (include/chatcore/gateway.h): short-lived, single-use
 * stand-ins for a token in the upgrade URL, kept in the gateway that issued
 * them. A ticket is 32 random bytes (base64url), so it cannot be guessed; it
 * carries the claims of the token it was issued for (user, expiry), so a
 * session opened with it ends when that token does. */
#include <chatcore/error.h>
#include <openssl/rand.h>
#include <string.h>

#include "core/base64.h"
#include "core/mem.h"
#include "gateway/gateway_internal.h"

#define TICKET_RANDOM_BYTES 32

typedef struct ticket {
  cc_tnode node;
  uint64_t expires_ns; /* the gateway's clock */
  int64_t token_exp;   /* the token's `exp`, Unix seconds */
  char id[CC_GATEWAY_TICKET_LEN];
  size_t user_len;
  char user[];
} ticket;

static void drop(cc_gateway *gw, ticket *t) {
  cc_table_remove(&gw->tickets, &t->node);
  explicit_bzero(t->id, sizeof t->id);
  cc_free(&gw->mem, t);
}

/* Every ticket lives equally long, so the oldest expires first. */
static void drop_expired(cc_gateway *gw, uint64_t now) {
  cc_tnode *n;
  while ((n = cc_table_oldest(&gw->tickets)) != NULL && ((ticket *)n)->expires_ns <= now)
    drop(gw, (ticket *)n);
}

void cc_gw_tickets_free(cc_gateway *gw) {
  if (!gw->tickets.slots) return;
  cc_tnode *n;
  while ((n = cc_table_oldest(&gw->tickets)) != NULL)
    drop(gw, (ticket *)n);
  cc_table_destroy(&gw->tickets);
}

int cc_gateway_ticket_issue(cc_gateway *gw, const cc_jwt_claims *claims, char *out,
                            size_t out_cap, uint64_t *expires_at_ms) {
  if (!gw || !claims || !out || out_cap < CC_GATEWAY_TICKET_LEN + 1 ||
      claims->sub_len == 0 || claims->sub_len > CC_JWT_SUB_MAX ||
      memchr(claims->sub, '\0', claims->sub_len))
    return CC_ERR_INVALID;
  uint64_t now_ms = cc_clock_realtime_ns() / 1000000u;
  int64_t now_s = (int64_t)(now_ms / 1000u);
  if (claims->exp <= now_s) return CC_ERR_JWT_EXPIRED;
  uint64_t retry_ns;
  if (cc_ratelimit_take(gw->ticket_rl, claims->sub, claims->sub_len, 1, &retry_ns) != 0)
    return CC_ERR_RATE_LIMITED;
  uint64_t now = cc_gw_now(gw);
  drop_expired(gw, now);
  if (gw->tickets.count >= CC_GW_MAX_TICKETS) return CC_ERR_RATE_LIMITED;
  uint8_t rnd[TICKET_RANDOM_BYTES];
  if (RAND_bytes(rnd, sizeof rnd) != 1) return CC_ERR_INTERNAL;
  ticket *t = cc_calloc(&gw->mem, 1, sizeof *t + claims->sub_len);
  if (!t) return CC_ERR_NOMEM;
  cc_base64_encode(t->id, rnd, sizeof rnd, CC_BASE64_URL | CC_BASE64_NOPAD);
  explicit_bzero(rnd, sizeof rnd);
  memcpy(t->user, claims->sub, claims->sub_len);
  t->user_len = claims->sub_len;
  t->token_exp = claims->exp;
  /* Never past the token: a ticket is no way to stretch one. */
  uint64_t ttl_ms = gw->opt.ticket_ttl_ms;
  if ((uint64_t)(claims->exp - now_s) <= ttl_ms / 1000u + 1) { /* no overflow */
    uint64_t left_ms = (uint64_t)claims->exp * 1000u - now_ms;
    if (left_ms < ttl_ms) ttl_ms = left_ms;
  }
  t->expires_ns = now + ttl_ms * 1000000u;
  t->node.key = (const uint8_t *)t->id;
  t->node.key_len = CC_GATEWAY_TICKET_LEN;
  t->node.hash = cc_table_hash(&gw->tickets, t->id, CC_GATEWAY_TICKET_LEN);
  if (cc_table_insert(&gw->tickets, &t->node) != 0) {
    cc_free(&gw->mem, t);
    return CC_ERR_NOMEM;
  }
  memcpy(out, t->id, CC_GATEWAY_TICKET_LEN);
  out[CC_GATEWAY_TICKET_LEN] = '\0';
  if (expires_at_ms) *expires_at_ms = now_ms + ttl_ms;
  return 0;
}

int cc_gw_ticket_redeem(cc_gateway *gw, const char *id, size_t len,
                        cc_jwt_claims *claims) {
  if (len != CC_GATEWAY_TICKET_LEN) return CC_ERR_NOT_FOUND;
  uint64_t h = cc_table_hash(&gw->tickets, id, len);
  ticket *t = (ticket *)cc_table_find(&gw->tickets, h, id, len);
  if (!t) return CC_ERR_NOT_FOUND;
  int expired = t->expires_ns <= cc_gw_now(gw);
  if (!expired) {
    memset(claims, 0, sizeof *claims);
    claims->exp = t->token_exp;
    claims->iat = -1;
    claims->sub_len = t->user_len;
    memcpy(claims->sub, t->user, t->user_len);
  }
  drop(gw, t); /* used once, whatever came of it */
  return expired ? CC_ERR_JWT_EXPIRED : 0;
}
