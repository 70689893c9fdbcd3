"""The protocol as documented: what a client written from docs/protocol.md alone
expects, checked against chatcore-server (issue 16, "Hardening"). Each test names
the sentence of the document it holds the server (or the document) to."""
import base64
import json
import pathlib
import re
import signal
import socket
import time

import jwt
import pytest

from chatclient import TIMEOUT, Clients, direct_chat_id, run, unique
from conftest import SECRET, raw_request, status_of, token, upgrade_request
from test_gateway import close_code, parse_frames

DOC = (pathlib.Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()


@pytest.fixture(scope="module")
def chat(servers):
    return servers.start("--dev-login")


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def section(title):
    """The text of one `## title` section of docs/protocol.md."""
    start = DOC.index("\n## " + title + "\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start:end if end > 0 else len(DOC)]


def b64url_json(part):
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def upgrade_head(port, tok):
    """Status line and headers of the answer to an upgrade with `tok`."""
    return raw_request(port, upgrade_request(tok=tok), timeout=1).partition(b"\r\n\r\n")[0]


# ---- 1. tokens: sub, exp, the algorithm ----------------------------------------------

def test_token_needs_exp_and_the_configured_algorithm(chat):
    # "Connecting": the claims a token must carry, and the default algorithm.
    connecting = section("Connecting")
    for needle in ("`sub`", "`exp`", "HS256"):
        assert needle in connecting, f"docs/protocol.md, Connecting, must name {needle}"
    # The example session's token carries what the document requires.
    example = re.search(r"Authorization: Bearer (\S+)", section("A complete session"))
    header, claims, _ = example.group(1).split(".")
    assert b64url_json(header)["alg"] == "HS256"
    assert {"sub", "exp"} <= set(b64url_json(claims)), b64url_json(claims)

    now = int(time.time())
    no_exp = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    expired = jwt.encode({"sub": "alice", "exp": now - 3600}, SECRET, algorithm="HS256")
    other_alg = jwt.encode({"sub": "alice", "exp": now + 600}, SECRET, algorithm="HS384")
    not_a_user = token("has space")
    for tok in (no_exp, expired, other_alg):
        head = upgrade_head(chat.port, tok)
        assert status_of(head) == 401, head
        assert b'error="invalid_token"' in head, head
        r = chat.http("GET", "/v1/chats", tok=tok)
        assert r.status == 401 and r.error_code() == "UNAUTHORIZED", r
    assert status_of(upgrade_head(chat.port, token("alice"))) == 101
    # A token whose sub is not a user id: the upgrade, then close 1008.
    resp = raw_request(chat.port, upgrade_request(tok=not_a_user), timeout=2)
    assert status_of(resp) == 101, resp[:200]
    assert close_code(parse_frames(resp.partition(b"\r\n\r\n")[2])) == 1008, resp


# ---- 2. draining ---------------------------------------------------------------------

def test_drain_answers_503_until_it_ends(own_servers):
    # "Connecting": 503, the server is draining (retry after Retry-After);
    # docs/gateway.md: /readyz 503 while draining.
    s = own_servers.start("--drain-timeout-ms", "8000")
    # A session that reads nothing and never answers our close: the drain
    # waits for it, which makes the drain window long enough to look at.
    held = socket.create_connection(("127.0.0.1", s.port), timeout=TIMEOUT)
    held.sendall(upgrade_request(tok=token("holder")))
    got = b""
    while b"\r\n\r\n" not in got:
        got += held.recv(4096)
    assert status_of(got) == 101, got
    s.proc.send_signal(signal.SIGTERM)

    ready = b"GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n"
    deadline = time.time() + TIMEOUT
    while status_of(raw_request(s.port, ready, timeout=1)) != 503:
        assert time.time() < deadline, "/readyz never said 503 after SIGTERM"
        time.sleep(0.05)
    head = upgrade_head(s.port, token("latecomer"))
    assert status_of(head) == 503, head
    assert re.search(rb"\r\nRetry-After: \d+\r\n", head + b"\r\n"), head
    alive = raw_request(s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", timeout=1)
    assert status_of(alive) == 200, alive
    assert s.proc.poll() is None, "the drain window is still open"

    # The held session was told 1001; once it is gone the drain ends.
    held.settimeout(TIMEOUT)
    data = got.partition(b"\r\n\r\n")[2]
    while 8 not in [op for op, _ in parse_frames(data)]:
        data += held.recv(4096)
    assert close_code(parse_frames(data)) == 1001, data
    held.close()
    assert s.proc.wait(timeout=TIMEOUT) == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", s.port), timeout=1)


# ---- 3 and 4. refused frames keep their requestId; nesting depth ------------------------

def nested(depth, kind):
    """A ping frame whose JSON nests `depth` levels (the frame's object is 1),
    through an unknown field: objects {"a":...} or arrays [[...]]."""
    inner = depth - 2
    value = "{\"a\":" * inner + "1" + "}" * inner if kind == "object" else \
        "[" * inner + "]" * inner
    return "{\"requestId\":\"%d\",\"ping\":{\"x\":%s}}" % (depth, value) if inner else \
        "{\"requestId\":\"%d\",\"ping\":{}}" % depth


def test_refused_frames_keep_their_request_id(chat):
    # "Frames": a frame refused but whose id is readable (a duplicate key
    # elsewhere, a U+0000, nesting too deep) gets its error reply with its id;
    # a frame naming its id twice gets 0.
    async def go():
        async with Clients(chat) as cs:
            c = await cs.connect(unique("reqid"))
            cases = [
                (41, "MALFORMED",
                 '{"requestId":"41","ping":{"clientTimeMs":"1","clientTimeMs":"2"}}'),
                (42, "MALFORMED", '{"requestId":"42","sendMessage":{"chatId":"d:a:b",'
                                  '"clientMsgId":"c","text":"a\\u0000b"}}'),
                (43, "MALFORMED", '{"request_id":"43","ping":{},"ping":{}}'),
                (44, "TOO_LARGE", nested(17, "object").replace('"17"', '"44"', 1)),
                (45, "TOO_LARGE", nested(40, "array").replace('"40"', '"45"', 1)),
                (0, "MALFORMED", '{"requestId":"46","requestId":"46","ping":{}}'),
            ]
            for rid, code, frame in cases:
                reply = await c.request_raw(frame, rid)
                assert reply["requestId"] == rid, (frame, reply)
                assert reply["error"]["code"] == "ERROR_CODE_" + code, (frame, reply)
            await c.ping()
    run(go())


def test_nesting_depth_16_is_read_17_is_too_large(chat):
    # "Limits": nesting deeper than 16 (JSON objects and arrays, the frame's
    # own object being 1) is TOO_LARGE; 16 is read (here: an unknown field).
    async def go():
        async with Clients(chat) as cs:
            c = await cs.connect(unique("deep"))
            for kind in ("object", "array"):
                for depth in (15, 16, 17, 18):
                    reply = await c.request_raw(nested(depth, kind), depth)
                    want = "UNKNOWN_COMMAND" if depth <= 16 else "TOO_LARGE"
                    assert reply["requestId"] == depth, reply
                    assert reply["error"]["code"] == "ERROR_CODE_" + want, (kind, depth, reply)
            # The deepest real frame (sync positions: depth 4) is fine.
            r = await c.call("sync", chats=[{"chatId": "d:a:b", "lastSeenSeq": 0}])
            assert len(r["chats"]) == 1
    run(go())


# ---- 5. presence.lastSeenMs: test_chat.py's test_presence (a peer never seen has
# none; one who left has it) -----------------------------------------------------------


# ---- 6. POST /v1/login ----------------------------------------------------------------

def test_dev_login_speaks_the_json_mapping(chat):
    # "HTTP API": expiresAtMs is a 64-bit integer, so a decimal string; errors
    # are the API's error body {"error": {"code", "message"}}.
    user = unique("login")
    r = chat.http("POST", "/v1/login", body={"user": user})
    assert r.status == 200, r
    assert r.body["userId"] == user
    exp = r.body["expiresAtMs"]
    assert isinstance(exp, str) and exp.isdigit(), r.body
    now = time.time() * 1000
    assert now < int(exp) <= now + 86400 * 1000 + 5000, r.body
    assert jwt.decode(r.body["token"], options={"verify_signature": False})["exp"] * 1000 \
        == int(exp)

    for body in ({"user": "not a user"}, {"name": user}, "not json"):
        bad = chat.http("POST", "/v1/login", body=body)
        assert bad.status == 400 and bad.error_code() == "BAD_REQUEST", bad
        assert bad.body["error"]["message"], bad
    wrong = chat.http("GET", "/v1/login")
    assert wrong.status == 405 and wrong.error_code() == "BAD_REQUEST", wrong
    assert wrong.headers["Allow"] == "POST"


# ---- 7. an empty chat list over HTTP ---------------------------------------------------

def test_http_chat_list_omits_an_empty_list(chat):
    # "Encodings": defaults (an empty list) are omitted, and "HTTP API" answers
    # with the same proto3 JSON: no chats is {}.
    user, peer = unique("lonely", "peer")
    assert "`GET /v1/chats` of a user without chats is `{}`" in section("HTTP API")
    r = chat.http("GET", "/v1/chats", tok=token(user))
    assert r.status == 200 and r.body == {}, r

    async def go():
        async with Clients(chat) as cs:
            c = await cs.connect(user)
            await c.call("createDirectChat", peerId=peer)
    run(go())
    r = chat.http("GET", "/v1/chats", tok=token(user))
    assert r.status == 200 and [x["chatId"] for x in r.body["chats"]] == \
        [direct_chat_id(user, peer)], r


# ---- 8. sync and the frame limit -------------------------------------------------------

def sync_frame(rid, ids):
    return compact({"requestId": str(rid),
                    "sync": {"chats": [{"chatId": i, "lastSeenSeq": "1"} for i in ids]}})


def test_sync_is_bounded_by_the_frame(chat):
    # "sync": the chats of one request must fit in maxFrameBytes (64 KiB),
    # which with long chat ids is fewer than 1024; over it, close 1009.
    assert "maxFrameBytes" in section("Resume and sync")
    long_ids = [f"g:{n:04d}" + "x" * 154 for n in range(1024)]
    assert all(len(i) == 160 for i in long_ids)
    fits = max(n for n in range(1, 1025) if len(sync_frame(1, long_ids[:n])) <= 65536)
    assert 300 < fits < 400, fits  # the budget the document states

    async def go():
        async with Clients(chat) as cs:
            c = await cs.connect(unique("syncer"))
            assert c.hello["maxFrameBytes"] == 65536
            reply = await c.request_raw(sync_frame(1, long_ids[:fits]), 1)
            got = reply["sync"]["chats"]
            assert [x["chatId"] for x in got] == long_ids[:fits]
            assert {x["error"] for x in got} == {"ERROR_CODE_NOT_FOUND"}, got[:2]
            await c.ping()
            # One chat more than fits: the frame is not read, close 1009.
            with pytest.raises(ConnectionError):
                await c.request_raw(sync_frame(2, long_ids[:fits + 1]), 2)
            assert c.ws.close_code == 1009
    run(go())
