#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

    python3 tests/fuzz/make_seeds.py BUILD_DIR

BUILD_DIR is a -Dfuzz=enabled build (its tests/fuzz/seed_transcode turns the
JSON frames into protobuf ones). Seeds are small, readable where they can be,
and cover what a target should reach at once: every command, reply and event
of docs/protocol.md, each kind of HTTP request the gateway answers (a GET /ws
without Upgrade, a missing header, an empty body among them: issue 16, finding
7), WebSocket frames of every opcode, good and bad tokens. The files are
committed; rerun this after changing it and commit what changed."""
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SECRET = b"0123456789abcdef0123456789abcdef"  # WS_TEST_SECRET
EXP = 4102444800  # 2100-01-01: good on the targets' fixed clock (Nov 2023)
KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(claims, header=None, secret=SECRET):
    header = header or {"alg": "HS256", "typ": "JWT"}
    h = b64url(json.dumps(header, separators=(",", ":")).encode())
    p = b64url(json.dumps(claims, separators=(",", ":")).encode())
    sig = hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64url(sig)}"


GOOD = token({"sub": "alice", "exp": EXP})


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)


def request(lines, body=""):
    return "\r\n".join(lines) + "\r\n\r\n" + body


def upgrade(*extra, path="/ws", auth=True, drop=()):
    std = [f"GET {path} HTTP/1.1", "Host: localhost", "Upgrade: websocket",
           "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}",
           "Sec-WebSocket-Version: 13"]
    if auth:
        std.append(f"Authorization: Bearer {GOOD}")
    return request([l for l in std if l.split(":")[0] not in drop] + list(extra))


def http_seeds():
    s = {
        "upgrade": upgrade(),
        "upgrade-proto": upgrade("Sec-WebSocket-Protocol: chatcore.v1.proto"),
        "upgrade-json-list": upgrade("Sec-WebSocket-Protocol: x, chatcore.v1.json"),
        "upgrade-other-protocol": upgrade("Sec-WebSocket-Protocol: mqtt"),
        "upgrade-query-token": upgrade(path=f"/ws?access_token={GOOD}", auth=False),
        "upgrade-origin": upgrade("Origin: https://chat.example.com"),
        "upgrade-no-token": upgrade(auth=False),
        "upgrade-bad-token": upgrade(auth=False) .replace(
            "\r\n\r\n", f"\r\nAuthorization: Bearer {GOOD[:-2]}xx\r\n\r\n"),
        "upgrade-expired": upgrade(auth=False).replace(
            "\r\n\r\n", "\r\nAuthorization: Bearer "
            + token({"sub": "alice", "exp": 1000}) + "\r\n\r\n"),
        # Finding 7: no Upgrade header at all, then no Connection, no key.
        "get-ws-no-upgrade": upgrade(drop=("Upgrade",)),
        "get-ws-no-connection": upgrade(drop=("Connection",)),
        "get-ws-no-key": upgrade(drop=("Sec-WebSocket-Key",)),
        "get-ws-bare": request(["GET /ws HTTP/1.1", "Host: localhost"]),
        "upgrade-version-8": upgrade(drop=("Sec-WebSocket-Version",)).replace(
            "\r\n\r\n", "\r\nSec-WebSocket-Version: 8\r\n\r\n"),
        "upgrade-then-frame": upgrade() + "\x81\x85\x00\x00\x00\x00hello",
        "healthz": request(["GET /healthz HTTP/1.1", "Host: x"]),
        "readyz": request(["GET /readyz HTTP/1.1"]),
        "metrics": request(["GET /metrics HTTP/1.1", "Host: x"]),
        "head-healthz": request(["HEAD /healthz HTTP/1.1"]),
        "app-get-etag": request(["GET /app.js?v=1&a=%41+b HTTP/1.1", "Host: x",
                                 'If-None-Match: W/"abc", "def"']),
        "app-post-body": request(["POST /v1/login HTTP/1.1", "Host: x",
                                  "Content-Type: application/json",
                                  "Content-Length: 16"], '{"user":"alice"}'),
        "app-post-empty-body": request(["POST /v1/login HTTP/1.1",
                                        "Content-Length: 0"]),
        "app-chunked": request(["POST /x HTTP/1.1", "Transfer-Encoding: chunked"],
                               "5\r\nhello\r\n0\r\n\r\n"),
        "app-bearer": request(["GET /v1/chats HTTP/1.1",
                               f"Authorization: Bearer {GOOD}"]),
        "http10": request(["GET / HTTP/1.0"]),
        "bad-request-line": "GET\r\n\r\n",
        "duplicate-headers": upgrade("Upgrade: websocket", "Host: other"),
        "long-header": request(["GET /ws HTTP/1.1", "X-Long: " + "a" * 3000]),
    }
    for name, data in s.items():
        write("http", name, data)


def frame(opcode, payload=b"", fin=True, masked=True, rsv=0, mask=b"\x12\x34\x56\x78"):
    payload = payload.encode() if isinstance(payload, str) else payload
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    m = 0x80 if masked else 0
    n = len(payload)
    if n < 126:
        head += bytes([m | n])
    elif n <= 0xFFFF:
        head += bytes([m | 126]) + n.to_bytes(2, "big")
    else:
        head += bytes([m | 127]) + n.to_bytes(8, "big")
    if masked:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def ws_seeds():
    # First byte: bit 0 protobuf, bits 1-3 log2 of the read size.
    JSON, PROTO, BYTEWISE = b"\x0e", b"\x0f", b"\x00"
    s = {
        "text": JSON + frame(1, "hello"),
        "binary": PROTO + frame(2, b"\x0a\x01\x31"),
        "empty-text": JSON + frame(1, ""),
        "empty-binary": PROTO + frame(2, b""),
        "ping-pong": JSON + frame(9, "p") + frame(10, "q") + frame(9, ""),
        "close-normal": JSON + frame(8, b"\x03\xe8bye"),
        "close-empty": JSON + frame(8, b""),
        "close-bad-code": JSON + frame(8, b"\x03\xed"),
        "close-one-byte": JSON + frame(8, b"\x03"),
        "fragmented": JSON + frame(1, "hel", fin=False) + frame(9, "x")
        + frame(0, "lo", fin=True),
        "continuation-alone": JSON + frame(0, "x"),
        "unmasked": JSON + frame(1, "x", masked=False),
        "rsv": JSON + frame(1, "x", rsv=4),
        "bad-opcode": JSON + frame(3, "x"),
        "invalid-utf8": JSON + frame(1, b"\xc3\x28"),
        "server-close": JSON + frame(1, "close now") + frame(8, b"\x03\xe8"),
        "after-close": JSON + frame(1, "close") + frame(1, "more") + frame(9, ""),
        "len-126": PROTO + frame(2, b"a" * 200),
        "len-127": JSON + bytes([0x81, 0xFF]) + (1 << 40).to_bytes(8, "big")
        + b"\0\0\0\0",
        "long-ping": JSON + frame(9, "p" * 126),
        "bytewise": BYTEWISE + frame(1, "slow") + frame(8, b"\x03\xe8"),
        "many": JSON + b"".join(frame(1, str(i)) for i in range(30)),
        "zero-mask": JSON + frame(1, "plain", mask=b"\0\0\0\0"),
    }
    for name, data in s.items():
        write("ws", name, data)


def doc_frames():
    """The JSON frames of docs/protocol.md: (kind, compact JSON)."""
    text = open(os.path.join(ROOT, "docs", "protocol.md")).read()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    candidates = []
    for b in blocks:
        candidates.append(b)
        candidates.extend(b.splitlines())
    out = {}
    for c in candidates:
        try:
            v = json.loads(c)
        except ValueError:
            continue
        if not isinstance(v, dict):
            continue
        kind = "server" if ("reply" in v or "event" in v) else "client"
        out[json.dumps(v, separators=(",", ":"))] = kind
    return [(k, j) for j, k in out.items()]


def transcode(build, kind, data):
    tool = os.path.join(build, "tests", "fuzz", "seed_transcode")
    r = subprocess.run([tool, kind], input=data.encode(), capture_output=True)
    return r.stdout if r.returncode == 0 else None


def name_of(kind, j):
    v = json.loads(j)
    top = v.get("reply") or v.get("event") or v
    keys = [k for k in top if k != "requestId"]
    return f"{kind}-{keys[0] if keys else 'empty'}"


def protocol_seeds(build):
    """Client frames in both encodings; server replies in protobuf, errors in
    JSON, events in both: a few dozen files that still cover every type."""
    seen = set()
    for kind, j in doc_frames():
        v = json.loads(j)
        if kind == "client" and "requestId" not in v:
            continue  # a fragment of a larger example
        name = name_of(kind, j)
        if name in seen:
            continue
        seen.add(name)
        k = 0 if kind == "client" else 1
        reply = v.get("reply", {})
        if kind == "client" or "event" in v or "error" in reply:
            write("protocol", name + ".json", bytes([k]) + j.encode())
        pb = transcode(build, kind, j)
        if pb is not None and "error" not in reply:
            write("protocol", name + ".pb", bytes([k | 2]) + pb)
    write("protocol", "empty-client-json", b"\x00")
    write("protocol", "empty-server-pb", b"\x03")
    write("protocol", "unknown-field", b'\x00{"requestId":"1","fly":{}}')
    write("protocol", "duplicate-key", b'\x00{"requestId":"1","requestId":"2","ping":{}}')


SEP = "\n~\n"
G = "g:" + "_" * 24


def c(rid, command, **fields):
    return json.dumps({"requestId": str(rid), command: fields}, separators=(",", ":"))


def service_seeds(build):
    d = "d:alice:bob"
    scenarios = {
        "direct-chat": [
            c(1, "createDirectChat", peerId="bob"),
            c(2, "sendMessage", chatId=d, clientMsgId="m1", text="hi bob"),
            c(3, "sendMessage", chatId=d, clientMsgId="m1", text="hi bob"),
            "bob:" + c(4, "sendMessage", chatId=d, clientMsgId="b1",
                       payload="eyJhIjoxfQ=="),
            c(5, "editMessage", chatId=d, seq="1", text="hi Bob"),
            c(6, "deleteMessage", chatId=d, seq="2"),
            "bob:" + c(7, "markRead", chatId=d, seq="3"),
            c(8, "setTyping", chatId=d, state="TYPING_STATE_STARTED"),
            c(9, "getHistory", chatId=d, beforeSeq="20", limit=3),
            c(10, "sync", chats=[{"chatId": d, "lastSeenSeq": "1"}], limit=100),
            c(11, "listChats", limit=2),
            c(12, "ping", clientTimeMs="1700000000000"),
        ],
        "group": [
            c(1, "createGroup", title="crew", memberIds=["bob", "carol"]),
            c(2, "sendMessage", chatId=G, clientMsgId="g1", text="hello all"),
            c(3, "addMembers", chatId=G, userIds=["dave"]),
            c(4, "removeMembers", chatId=G, userIds=["carol"]),
            "bob:" + c(5, "sendMessage", chatId=G, clientMsgId="b1", text="hey"),
            "bob:" + c(6, "leaveChat", chatId=G),
            "bob:" + c(7, "sendMessage", chatId=G, clientMsgId="b2", text="gone"),
            c(8, "getHistory", chatId=G, limit=10),
            c(9, "leaveChat", chatId=G),
        ],
        "errors": [
            "",
            "{",
            '{"requestId":"1"}',
            '{"requestId":"2","fly":{}}',
            c(3, "sendMessage", chatId="g:nope", clientMsgId="x", text="x"),
            c(4, "createDirectChat", peerId="alice"),
            c(5, "getHistory", chatId=d, afterSeq="18446744073709551615"),
            c(6, "markRead", chatId=d, seq="99"),
        ],
        "rate": [c(i, "setTyping", chatId=d, state="TYPING_STATE_STARTED")
                 for i in range(30)],
    }
    for name, msgs in scenarios.items():
        write("service", name + ".json", "j" + SEP.join(msgs))
        pbs = []
        for m in msgs:
            body = m[4:] if m.startswith("bob:") else m
            pb = transcode(build, "client", body) if body else b""
            if pb is None:
                continue
            pbs.append((b"bob:" if m.startswith("bob:") else b"") + pb)
        write("service", name + ".pb", b"p" + SEP.encode().join(pbs))


def jwt_seeds():
    now = 1700000000
    es = {"alg": "ES256", "typ": "JWT"}
    s = {
        "good": GOOD,
        "good-iat-nbf": token({"sub": "bob", "exp": EXP, "iat": now, "nbf": now}),
        "good-iss-aud": token({"sub": "a", "exp": EXP, "iss": "https://issuer.example",
                               "aud": ["x", "chatcore"]}),
        "expired": token({"sub": "alice", "exp": now - 100}),
        "not-yet": token({"sub": "alice", "exp": EXP, "nbf": now + 1000}),
        "no-exp": token({"sub": "alice"}),
        "no-sub": token({"exp": EXP}),
        "sub-number": token({"sub": 7, "exp": EXP}),
        "exp-string": token({"sub": "alice", "exp": "2100"}),
        "exp-fraction": token({"sub": "alice", "exp": 4102444800.5}),
        "alg-none": token({"sub": "alice", "exp": EXP}, {"alg": "none"}).rsplit(".", 1)[0]
        + ".",
        "alg-es256": token({"sub": "alice", "exp": EXP, "iss": "https://issuer.example",
                            "aud": "chatcore"}, es),
        "crit": token({"sub": "alice", "exp": EXP}, {"alg": "HS256", "crit": ["x"]}),
        "typ-other": token({"sub": "alice", "exp": EXP}, {"alg": "HS256", "typ": "JOSE"}),
        "bad-signature": GOOD[:-4] + "AAAA",
        "padding": GOOD + "==",
        "two-segments": GOOD.rsplit(".", 1)[0],
        "empty-segments": "..",
        "not-json": b64url(b"nope") + "." + b64url(b"{}") + ".AAAA",
        "claims-json": '{"sub":"alice","exp":4102444800}',
        "alg-name": "HS256",
    }
    for name, data in s.items():
        write("jwt", name, data)
    dup = token({"sub": "alice", "exp": EXP})  # then duplicate a key by hand
    h, p, _ = dup.split(".")
    payload = b'{"sub":"alice","sub":"bob","exp":4102444800}'
    p = b64url(payload)
    sig = hmac.new(SECRET, f"{h}.{p}".encode(), hashlib.sha256).digest()
    write("jwt", "duplicate-sub", f"{h}.{p}.{b64url(sig)}")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    shutil.rmtree(os.path.join(HERE, "corpus"), ignore_errors=True)
    http_seeds()
    ws_seeds()
    protocol_seeds(build)
    service_seeds(build)
    jwt_seeds()


if __name__ == "__main__":
    main()
