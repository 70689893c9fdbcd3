/* libchatcore — umbrella header: includes the whole public API. */
#ifndef CHATCORE_H
#define CHATCORE_H

#include <chatcore/common.h>
#include <chatcore/error.h>
#include <chatcore/buf.h>
#include <chatcore/ratelimit.h>
#include <chatcore/edge.h>
#include <chatcore/fanout.h>
#include <chatcore/gateway.h>
#include <chatcore/http.h>
#include <chatcore/http_api.h>
#include <chatcore/jwt.h>
#include <chatcore/link.h>
#include <chatcore/log.h>
#include <chatcore/memory.h>
#include <chatcore/loop.h>
#include <chatcore/memnet.h>
#include <chatcore/metrics.h>
#include <chatcore/presence.h>
#include <chatcore/protocol.h>
#include <chatcore/queue.h>
#include <chatcore/server.h>
#include <chatcore/service.h>
#include <chatcore/session.h>
#include <chatcore/postgres.h>
#include <chatcore/nats.h>
#include <chatcore/redis.h>
#include <chatcore/sqlite.h>
#include <chatcore/storage.h>
#include <chatcore/uv.h>

#endif /* CHATCORE_H */
