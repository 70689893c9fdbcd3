/* In-memory transport (include/chatcore/memnet.h). */
#include <chatcore/error.h>
#include <chatcore/memnet.h>
#include <string.h>

#include "core/mem.h"
#include "core/strbuf.h"

struct cc_memclient {
  cc_memnet *net;
  cc_memclient *prev, *next; /* all clients */
  cc_conn *conn;             /* NULL once the gateway closed it */
  cc_strbuf inbox;
  size_t read_off; /* bytes of inbox already read */
  size_t window;
  int dirty; /* has output or a new deadline to look at */
};

struct cc_memnet {
  cc_mem mem;
  cc_gateway *gw;
  cc_memclient *clients;
};

static void on_notify(void *driver_data, cc_conn *conn) {
  (void)driver_data;
  cc_memclient *cl = cc_conn_get_driver_data(conn);
  if (cl) cl->dirty = 1;
}

int cc_memnet_new(cc_memnet **out, cc_gateway *gw, const cc_mem *mem) {
  cc_mem m;
  if (!out || !gw || cc_mem_copy(&m, mem) != 0) return CC_ERR_INVALID;
  cc_memnet *net = cc_calloc(&m, 1, sizeof *net);
  if (!net) return CC_ERR_NOMEM;
  net->mem = m;
  net->gw = gw;
  cc_gateway_set_notify(gw, on_notify, net);
  *out = net;
  return 0;
}

static void drop_conn(cc_memclient *cl) {
  if (!cl->conn) return;
  cc_conn *c = cl->conn;
  cl->conn = NULL;
  cc_conn_free(c);
}

static void free_client(cc_memclient *cl) {
  cc_memnet *net = cl->net;
  drop_conn(cl);
  if (cl->prev)
    cl->prev->next = cl->next;
  else
    net->clients = cl->next;
  if (cl->next) cl->next->prev = cl->prev;
  cc_strbuf_free(&cl->inbox);
  cc_free(&net->mem, cl);
}

void cc_memnet_free(cc_memnet *net) {
  if (!net) return;
  while (net->clients)
    free_client(net->clients);
  cc_gateway_set_notify(net->gw, NULL, NULL);
  cc_mem m = net->mem;
  cc_free(&m, net);
}

/* Moves output into the inbox up to the window; closes a finished connection. */
static void flush_one(cc_memclient *cl) {
  cl->dirty = 0;
  if (!cl->conn) return;
  cc_iov iov[64];
  size_t n;
  while (cl->inbox.len - cl->read_off < cl->window &&
         (n = cc_conn_out_iov(cl->conn, iov, 64)) > 0) {
    size_t moved = 0;
    for (size_t i = 0; i < n; i++) {
      cc_strbuf_append(&cl->inbox, iov[i].base, iov[i].len);
      moved += iov[i].len;
    }
    if (cl->inbox.failed) {
      drop_conn(cl);
      return;
    }
    cc_conn_out_consumed(cl->conn, moved);
  }
  if (cc_conn_should_close(cl->conn)) drop_conn(cl);
}

void cc_memnet_flush(cc_memnet *net) {
  if (!net) return;
  /* Flushing may make other connections dirty (a close, a fan-out from a
   * callback): repeat until nothing changes. */
  int again = 1;
  while (again) {
    again = 0;
    for (cc_memclient *cl = net->clients; cl; cl = cl->next)
      if (cl->dirty || (cl->conn && cc_conn_out_bytes(cl->conn) > 0 &&
                        cl->inbox.len - cl->read_off < cl->window)) {
        size_t before = cl->inbox.len;
        flush_one(cl);
        if (cl->inbox.len != before) again = 1;
      }
  }
}

int cc_memnet_connect(cc_memnet *net, const char *peer_ip, cc_memclient **out) {
  if (!net || !out) return CC_ERR_INVALID;
  cc_memclient *cl = cc_calloc(&net->mem, 1, sizeof *cl);
  if (!cl) return CC_ERR_NOMEM;
  int rv = cc_conn_new(net->gw, peer_ip, &cl->conn);
  if (rv != 0) {
    cc_free(&net->mem, cl);
    return rv;
  }
  cl->net = net;
  cl->window = 16u << 20;
  cc_strbuf_init(&cl->inbox, &net->mem);
  cc_conn_set_driver_data(cl->conn, cl);
  cl->next = net->clients;
  if (net->clients) net->clients->prev = cl;
  net->clients = cl;
  cl->dirty = 1; /* a connection over the cap has a 503 waiting already */
  cc_memnet_flush(net);
  *out = cl;
  return 0;
}

int cc_memclient_write(cc_memclient *cl, const uint8_t *data, size_t len) {
  if (!cl || (!data && len)) return CC_ERR_INVALID;
  if (!cl->conn) return CC_ERR_CLOSED;
  int rv = cc_conn_recv(cl->conn, data, len);
  cl->dirty = 1;
  if (rv != 0) drop_conn(cl);
  cc_memnet_flush(cl->net);
  return rv;
}

size_t cc_memclient_read(cc_memclient *cl, uint8_t *buf, size_t cap) {
  if (!cl || !buf) return 0;
  size_t n = cl->inbox.len - cl->read_off;
  if (n > cap) n = cap;
  if (n) memcpy(buf, cl->inbox.data + cl->read_off, n);
  cl->read_off += n;
  if (cl->read_off == cl->inbox.len) {
    cl->inbox.len = 0;
    cl->read_off = 0;
  }
  /* Room in the window again: pull more. */
  cl->dirty = 1;
  cc_memnet_flush(cl->net);
  return n;
}

size_t cc_memclient_pending(const cc_memclient *cl) {
  return cl ? cl->inbox.len - cl->read_off : 0;
}

void cc_memclient_set_window(cc_memclient *cl, size_t bytes) {
  if (cl) cl->window = bytes;
}

int cc_memclient_closed(const cc_memclient *cl) {
  return !cl || !cl->conn;
}

cc_conn *cc_memclient_conn(const cc_memclient *cl) {
  return cl ? cl->conn : NULL;
}

void cc_memclient_close(cc_memclient *cl) {
  if (!cl) return;
  cc_memnet *net = cl->net;
  free_client(cl);
  cc_memnet_flush(net);
}

void cc_memnet_run_timers(cc_memnet *net) {
  if (!net) return;
  cc_memclient *next;
  for (cc_memclient *cl = net->clients; cl; cl = next) {
    next = cl->next;
    if (cl->conn) {
      cc_conn_on_timer(cl->conn);
      cl->dirty = 1;
    }
  }
  cc_memnet_flush(net);
}
