"""Hostile clients against a running chatcore-server while valid clients measure
(issue 16, "Hostile clients in the test suite").

Attacked, from a separate process (so that the attackers' Python does not sit in
the event loop that times the valid clients), about 2,000 connections in ~15 s:

- slowloris: a partial HTTP upgrade request, one byte a second, reopened when
  the server drops it (the gateway's 10 s handshake timeout);
- garbage: random bytes instead of HTTP, and random bytes after a valid upgrade;
- oversized frames: a frame header announcing 16 MiB, and a text frame over the
  64 KiB message limit;
- the pong flood of finding 1: masked pings streamed as fast as the socket takes
  them, far past the frame rate limit's 4008 close, reconnecting for a few
  seconds.

The gateway limits handshakes per address (20/s, bursts of 40): the attackers
are spread over loopback source addresses (127.0.x.y, bound per socket), as are
the valid clients (127.1.0.x); the server runs with its default limits. On this
shared 2-core machine the attacker process runs niced and the measuring process
without Python's cyclic collector, so that neither client's own pauses are
counted against the server (see attacker_main and the test).

Asserted: every valid client's handshake and every ping round trip succeeds,
before, during and after the attack; the p99 of the handshake and of the round
trip during the attack is within max(2 x baseline p99, 50 ms); every attacker
was cut by the server (slowloris with its 408, the flooders after a 4008); the
server is alive, its connections back to the valid clients' after the attack,
its RSS peak within baseline + 64 MiB and back within baseline + 16 MiB after;
and it exits cleanly at the end (no sanitizer report). The figures are printed
(pytest -s, or the test log).
"""
import asyncio
import gc
import json
import multiprocessing
import os
import random
import resource
import socket
import struct
import time

import websockets

from chatclient import SUBPROTOCOL, SCALE, decode_server, encode_client
from conftest import token, upgrade_request

SANITIZED = os.environ.get("CHATCORE_SANITIZE", "none") not in ("", "none")

VALID = 20                 # valid clients, each on its own source address
PINGS_PER_SESSION = 10     # then it closes and handshakes again
PING_GAP = 0.1             # s between a client's round trips
WARMUP_S, BASELINE_S, AFTER_S = 1.0, 4.0, 3.0
ATTACK_S = 15.0            # longer than the 10 s handshake timeout: slowloris gets cut

SLOWLORIS = 600            # workers; each reopens once it is dropped
GARBAGE_HTTP = 150         # workers x 2 connections
GARBAGE_WS = 150
OVERSIZE_HEADER = 100
OVERSIZE_TEXT = 100
FLOODERS = 10              # workers x up to FLOOD_CONNS connections
FLOOD_CONNS = 15
FLOOD_S = 5.0

# RSS after the attack, against the baseline. The gateway frees what a connection
# held when it closes, but glibc keeps freed heap in its arenas rather than handing
# every page back, so the attack's high-water mark may stay resident. That mark is
# small when the server bounds what it holds: ~600 slowloris header buffers of a
# few hundred bytes, ~350 upgraded sessions of which 100 hold up to a 64 KiB
# message (~7 MiB), nothing queued for the flooders. 16 MiB is above that (the
# runs in docs measure ~1-2 MiB) and far below what an unbounded queue reaches:
# finding 1 took a server from 8 MB to 416 MB with one flooder. The peak during
# the attack gets 64 MiB.
RSS_MARGIN_KIB = 16 * 1024
RSS_PEAK_MARGIN_KIB = 64 * 1024


def percentile(samples, p):
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def attacker_addr(i):
    return f"127.0.{1 + i // 250}.{1 + i % 250}"


def masked(opcode, payload=b"", fin=True, length=None):
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


# ---- the attackers (a child process) -----------------------------------------------

TOKENS = {}  # user -> token, minted before the attack starts


class Attack:
    def __init__(self, port, deadline):
        self.port = port
        self.deadline = deadline
        self.stats = {}
        self.addr = 0

    def count(self, key):
        self.stats[key] = self.stats.get(key, 0) + 1

    def left(self):
        return self.deadline - time.monotonic()

    async def open(self, kind, src=None):
        if src is None:
            src = attacker_addr(self.addr % 2500)
            self.addr += 1
        r, w = await asyncio.open_connection("127.0.0.1", self.port, local_addr=(src, 0))
        self.count(kind + ".connections")
        return r, w

    async def upgraded(self, kind, user, src=None):
        """A raw socket past a valid upgrade (101), or None if refused."""
        r, w = await self.open(kind, src)
        w.write(upgrade_request(tok=TOKENS[user]))
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        if b" 101 " not in head.split(b"\r\n")[0]:
            self.count(kind + ".refused_" + head.split(b" ")[1].decode())
            w.close()
            return None
        return r, w

    async def until_closed(self, kind, r, w, timeout=12):
        """Reads what the server sends until it closes; counts how it ended: an
        HTTP status, a close code, or (most often) a reset, the server having
        closed with our unread bytes still in its socket."""
        data = b""
        try:
            while True:
                chunk = await asyncio.wait_for(r.read(65536), timeout)
                if not chunk:
                    break
                data += chunk[:4096] if len(data) < 65536 else b""
        except asyncio.TimeoutError:
            self.count(kind + ".still_open")
        except OSError:
            self.count(kind + ".reset")
        else:
            if data.startswith(b"HTTP/1.1 "):
                self.count(kind + ".http_" + data.split(b" ")[1].decode())
            elif len(data) >= 4 and data[0] == 0x88:
                self.count(kind + ".close_%d" % struct.unpack("!H", data[2:4])[0])
            else:
                self.count(kind + ".closed")
        finally:
            w.close()

    async def slowloris(self, i):
        request = upgrade_request(tok=TOKENS[f"slow{i}"])[:-2]  # never the final CRLF
        while self.left() > 1:
            r, w = await self.open("slowloris")
            try:
                for b in request:
                    if self.left() <= 0:
                        break
                    w.write(bytes([b]))
                    await w.drain()
                    try:  # a byte a second; anything from the server ends it
                        got = await asyncio.wait_for(r.read(4096), 1.0)
                        self.count("slowloris.dropped_" + (
                            got.split(b" ")[1].decode() if got.startswith(b"HTTP/") else "eof"))
                        break
                    except asyncio.TimeoutError:
                        pass
            except OSError:
                self.count("slowloris.reset")
            finally:
                w.close()

    async def garbage_http(self, i):
        for _ in range(2):
            r, w = await self.open("garbage_http")
            try:
                for _ in range(8):  # 8 KiB of noise, a KiB at a time
                    w.write(os.urandom(1024))
                    await w.drain()
                    await asyncio.sleep(0.05)
            except OSError:
                pass
            await self.until_closed("garbage_http", r, w)

    async def garbage_ws(self, i):
        conn = await self.upgraded("garbage_ws", f"garbage{i}", attacker_addr(1000 + i))
        if conn:
            r, w = conn
            try:
                for _ in range(16):
                    w.write(os.urandom(1024))
                    await w.drain()
                    await asyncio.sleep(0.05)
            except OSError:
                pass
            await self.until_closed("garbage_ws", r, w)

    async def oversize_header(self, i):
        conn = await self.upgraded("oversize_header", f"big{i}", attacker_addr(1200 + i))
        if conn:
            r, w = conn
            try:  # announce 16 MiB, then start on it
                w.write(masked(2, length=16 << 20)[:14])
                for _ in range(8):
                    w.write(os.urandom(8192))
                    await w.drain()
            except OSError:
                pass
            await self.until_closed("oversize_header", r, w)

    async def oversize_text(self, i):
        conn = await self.upgraded("oversize_text", f"long{i}", attacker_addr(1300 + i))
        if conn:
            r, w = conn
            try:
                w.write(masked(1, b"x" * (65 * 1024)))
                await w.drain()
            except OSError:
                pass
            await self.until_closed("oversize_text", r, w)

    async def flood(self, i):
        """Finding 1: pings far past the frame rate limit (its 4008 comes after
        400 at once), never reading, until the server cuts the connection."""
        chunk = masked(9) * 10000  # 60 KB of empty masked pings
        stop = time.monotonic() + FLOOD_S
        for n in range(FLOOD_CONNS):
            if time.monotonic() > stop:
                break
            conn = await self.upgraded("flood", f"flood{i}", attacker_addr(1400 + i))
            if conn is None:
                await asyncio.sleep(0.5)  # 429: this address's handshakes ran out
                continue
            r, w = conn
            sent = 0
            try:
                while sent < 300 and time.monotonic() < stop:  # at most 18 MB each
                    w.write(chunk)
                    await asyncio.wait_for(w.drain(), max(0.1, stop - time.monotonic()))
                    sent += 1
                self.count("flood.outlived_" + ("limit" if sent >= 300 else "time"))
            except OSError:
                self.count("flood.cut")  # what should happen
            except asyncio.TimeoutError:
                self.count("flood.stalled")  # the server stopped reading us
            self.stats["flood.ping_chunks"] = self.stats.get("flood.ping_chunks", 0) + sent
            w.close()

    async def run(self):
        async def guard(coro):
            try:
                await asyncio.wait_for(coro, ATTACK_S + 15)
            except Exception as e:  # a refused connect, a timeout: counted, not fatal
                self.count("error." + type(e).__name__)
        jobs = ([self.slowloris(i) for i in range(SLOWLORIS)] +
                [self.garbage_http(i) for i in range(GARBAGE_HTTP)] +
                [self.garbage_ws(i) for i in range(GARBAGE_WS)] +
                [self.oversize_header(i) for i in range(OVERSIZE_HEADER)] +
                [self.oversize_text(i) for i in range(OVERSIZE_TEXT)] +
                [self.flood(i) for i in range(FLOODERS)])
        random.shuffle(jobs)
        await asyncio.gather(*(guard(j) for j in jobs))


def attacker_main(port, go, results):
    # The attackers share this 2-core machine with the server and the measuring
    # clients, where in earnest they would run elsewhere: opening ~1,500
    # connections at once takes this process a full core for a second, which
    # delayed the valid clients' own Python (handshakes 30-50 ms late, the
    # server under half a core at the time). Niced, the attackers take what
    # CPU is left; what reaches the server is the same. Tokens are minted
    # before the start for the same reason.
    os.nice(10)
    for kind, n in (("slow", SLOWLORIS), ("garbage", GARBAGE_WS), ("big", OVERSIZE_HEADER),
                    ("long", OVERSIZE_TEXT), ("flood", FLOODERS)):
        for i in range(n):
            TOKENS[f"{kind}{i}"] = token(f"{kind}{i}")
    go.wait()
    a = Attack(port, time.monotonic() + ATTACK_S)
    asyncio.run(a.run())
    results.send(a.stats)


# ---- the valid clients ---------------------------------------------------------------

class Measure:
    def __init__(self, server):
        self.server = server
        self.phase = "warmup"  # first handshakes of a fresh process: not counted
        self.handshake = {}    # phase -> [s]
        self.rtt = {}
        self.failures = []
        self.stop = False
        self.slow = []
        self.t_attack = 0

    async def client(self, i):
        src = f"127.1.0.{1 + i}"
        user = f"valid{i}"
        headers = {"Authorization": "Bearer " + token(user)}
        # Spread over a session's length: in lockstep, all 20 handshakes fall
        # on the same instant and a percentile of them is one sample 20 times.
        await asyncio.sleep(i * PINGS_PER_SESSION * PING_GAP / VALID)
        while not self.stop:
            phase = self.phase
            try:
                t0 = time.perf_counter()
                ws = await asyncio.wait_for(websockets.connect(
                    self.server.url, subprotocols=[SUBPROTOCOL["json"]],
                    extra_headers=headers, local_addr=(src, 0), ping_interval=None), 10)
                hello = decode_server(await asyncio.wait_for(ws.recv(), 10), "json")
                assert hello["event"]["hello"]["userId"] == user, hello
                self.handshake.setdefault(phase, []).append(time.perf_counter() - t0)
                if phase == "during":
                    self.slow.append((time.perf_counter() - t0, t0 - self.t_attack))
                for k in range(1, PINGS_PER_SESSION + 1):
                    if self.stop:
                        break
                    t0 = time.perf_counter()
                    await ws.send(encode_client({"requestId": k, "ping": {"clientTimeMs": k}},
                                                "json"))
                    while True:
                        frame = decode_server(await asyncio.wait_for(ws.recv(), 10), "json")
                        if frame.get("reply") and frame["reply"]["requestId"] == k:
                            break
                    assert frame["reply"]["ping"]["clientTimeMs"] == k, frame
                    self.rtt.setdefault(self.phase, []).append(time.perf_counter() - t0)
                    await asyncio.sleep(PING_GAP)
                await ws.close()
            except Exception as e:
                self.failures.append(f"{user} ({phase}): {type(e).__name__}: {e}")
                await asyncio.sleep(0.2)


SERVER_METRICS = ('cc_gateway_closes_total{reason="rate_limited"}',
                  'cc_gateway_handshakes_total{result="101"}',
                  'cc_gateway_handshakes_total{result="429"}',
                  'cc_gateway_bytes_total{direction="in"}')


def metric(port, name):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return int(data.split(b"\n" + name.encode() + b" ")[1].split(b"\n")[0])


def test_hostile_clients_do_not_starve_valid_ones(own_servers):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the server inherits it
    server = own_servers.start()
    # The attacker process is forked now, before any event loop exists, and waits.
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    results, results_in = ctx.Pipe(duplex=False)
    attacker = ctx.Process(target=attacker_main, args=(server.port, go, results_in),
                           daemon=True)
    attacker.start()
    rss = {}
    served = {}

    async def main():
        m = Measure(server)
        clients = [asyncio.create_task(m.client(i)) for i in range(VALID)]
        await asyncio.sleep(WARMUP_S)
        m.phase = "baseline"
        await asyncio.sleep(BASELINE_S)
        rss["before"] = server.rss_kib()
        m.phase = "during"
        go.set()
        m.t_attack = time.perf_counter()
        peak = rss["before"]
        loop = asyncio.get_running_loop()
        start = loop.time()
        while attacker.is_alive() and loop.time() - start < (ATTACK_S + 30) * SCALE:
            await asyncio.sleep(0.1)
            peak = max(peak, server.rss_kib())
        rss["peak"] = peak
        m.phase = "settling"
        # The attackers are gone: wait until the server dropped their connections
        # (the valid clients' own, up to VALID, and the /metrics request remain).
        deadline = loop.time() + 30 * SCALE
        while metric(server.port, "cc_gateway_open_connections") > VALID + 1 \
                and loop.time() < deadline:
            await asyncio.sleep(0.2)
        rss["open_after"] = metric(server.port, "cc_gateway_open_connections")
        for name in SERVER_METRICS:
            served[name] = metric(server.port, name)
        await asyncio.sleep(2)
        m.phase = "after"
        await asyncio.sleep(AFTER_S)
        rss["after"] = server.rss_kib()
        m.stop = True
        await asyncio.gather(*clients)
        return m

    # Python's cyclic collector once paused this process for 43 ms (a generation
    # 2 pass) in the middle of 20 handshakes: that is the measuring client's own
    # pause, not the server's, so it stays off while the clients measure.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        m = asyncio.run(asyncio.wait_for(main(), 120 * SCALE))
    finally:
        gc.enable()
        gc.unfreeze()
    attacker.join(10)
    stats = results.recv() if results.poll(5) else {}

    def figures(samples):
        return (f"n={len(samples)} p50={percentile(samples, 50) * 1e3:.1f} ms "
                f"p99={percentile(samples, 99) * 1e3:.1f} ms")
    print()
    for phase in ("baseline", "during", "after"):
        print(f"{phase:8}: round trip {figures(m.rtt.get(phase, [0]))}; "
              f"handshake {figures(m.handshake.get(phase, [0]))}")
    print(f"server RSS: before {rss['before']} KiB, peak {rss['peak']} KiB, "
          f"after {rss['after']} KiB; connections open after: {rss['open_after']}")
    print("attack:", json.dumps(dict(sorted(stats.items()))))
    print(f"flooders wrote {stats.get('flood.ping_chunks', 0) * 60000 / 1e6:.0f} MB; "
          "server:", served)
    print("slowest handshakes under attack (ms, at s into it):",
          [(round(d * 1e3, 1), round(t, 2)) for d, t in sorted(m.slow, reverse=True)[:5]])

    assert server.proc.poll() is None, "the server died: " + server.output()[-3000:]
    assert not m.failures, f"{len(m.failures)} valid sessions failed: {m.failures[:10]}"
    assert stats, "the attacker process reported nothing"
    conns = sum(v for k, v in stats.items() if k.endswith(".connections"))
    assert conns >= 1500, stats  # the attack happened
    for phase in ("baseline", "during", "after"):
        assert len(m.handshake.get(phase, [])) >= VALID, (phase, m.handshake.get(phase))
    for kind in ("rtt", "handshake"):
        samples = getattr(m, kind)
        base, during = percentile(samples["baseline"], 99), percentile(samples["during"], 99)
        assert during <= max(2 * base, 0.050 * SCALE), \
            f"{kind} p99 {during * 1e3:.1f} ms under attack, {base * 1e3:.1f} ms before"
    # Every attacker was cut by the server: none outlived its reads, no flooder
    # streamed its 18 MB or stalled unread, slowloris met the handshake timeout,
    # and the flooders earned their 4008 (rate limited) before being dropped.
    assert not [k for k in stats if k.endswith(".still_open") or k.startswith(
        ("flood.outlived", "flood.stalled"))], stats
    assert stats.get("slowloris.dropped_408", 0) >= SLOWLORIS * 0.9, stats
    assert served[SERVER_METRICS[0]] >= stats.get("flood.cut", 0) * 0.9 > 0, (served, stats)
    # What the server read in all: the flooders alone wrote hundreds of MB (most
    # of it into socket buffers the server never reads past its close); every
    # other attacker together sends under 20 MB (see the Attack methods).
    assert served[SERVER_METRICS[3]] < 64 << 20, served
    assert rss["open_after"] <= VALID + 1, rss
    if not SANITIZED:  # ASan's quarantine keeps freed memory on purpose
        assert rss["peak"] - rss["before"] < RSS_PEAK_MARGIN_KIB, rss
        assert rss["after"] - rss["before"] < RSS_MARGIN_KIB, rss
