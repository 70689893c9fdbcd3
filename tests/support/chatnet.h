/* Clients of several in-memory gateways in one test process (check_edges,
 * check_split): what one gateway's service did may reach another gateway's
 * connections without that gateway's driver being called, so every read
 * first runs all the drivers. These assert. */
#ifndef CC_TESTS_SUPPORT_CHATNET_H
#define CC_TESTS_SUPPORT_CHATNET_H

#include <chatcore/edge.h>
#include <chatcore/jwt.h>
#include <chatcore/memnet.h>
#include <stddef.h>

/* A gateway in front of `edge` (its callbacks) checking tokens with
 * `verifier` (both borrowed), on a new in-memory network. Free *net, then
 * *gw. */
void chatnet_gateway(cc_edge *edge, cc_jwt_verifier *verifier, cc_gateway **gw,
                     cc_memnet **net);

/* The networks every read flushes first (borrowed; at most 8). */
void chatnet_use(cc_memnet *const *nets, size_t n);
/* Every frame waiting on `cl`, concatenated (each followed by '\n',
 * NUL-terminated) into `out`; the code of a close frame among them in *close
 * (if not NULL). The number of frames. */
size_t chatnet_drain(cc_memclient *cl, char *out, size_t cap, int *close);
/* A session of `user` on `net`, its hello read. */
cc_memclient *chatnet_connect(cc_memnet *net, const char *user);
void chatnet_send_json(cc_memclient *cl, const char *json);
/* sendMessage `text` to `chat` as request `rid`. */
void chatnet_send_text(cc_memclient *cl, int rid, const char *chat, const char *cmid,
                       const char *text);
/* createGroup with `members` (a JSON list) as request 1; its id into `chat`
 * (64 bytes). */
void chatnet_create_group(cc_memclient *cl, const char *members, char *chat);

#endif
