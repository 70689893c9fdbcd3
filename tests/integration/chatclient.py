"""A small chatcore.v1 client for the integration tests.

It speaks both encodings of docs/protocol.md: the proto3 JSON mapping and protobuf.
No generated protobuf code exists for Python here (and Debian's python3-protobuf is
not a test dependency), so the schema is read from proto/chatcore/v1/chatcore.proto
itself and a few dozen lines encode and decode it: the tests can never drift from
the schema.

Both encodings decode to the same plain form: dicts keyed by lowerCamelCase field
names, every 64-bit integer a Python int, enums by name, bytes as bytes, and every
field the server left out filled in with its default (0, "", False, [], the first
enum name; None for an absent sub-message). Decoding JSON also checks the mapping's
rules that are easy to get wrong (64-bit integers as strings, enums as names).

ChatClient is one WebSocket session: call() sends a command and waits for the reply
with the same requestId; events are buffered as they arrive, and wait_event() takes
the first one that matches.
"""
import asyncio
import base64
import http.client
import itertools
import json
import os
import pathlib
import re
import secrets
import signal
import subprocess
import tempfile
from typing import NamedTuple, Optional

import websockets

from conftest import Server, db_args, token

PROTO = pathlib.Path(__file__).resolve().parents[2] / "proto" / "chatcore" / "v1" / "chatcore.proto"

# Sanitizer builds are several times slower: every bounded wait grows with them.
SCALE = 1 if os.environ.get("CHATCORE_SANITIZE", "none") in ("", "none") else 5
TIMEOUT = 5.0 * SCALE

SUBPROTOCOL = {"json": "chatcore.v1.json", "proto": "chatcore.v1.proto"}
LOG_ENTRIES = ("message", "messageEdited", "messageDeleted", "membershipChanged")


def unique(*names):
    """Fresh user ids for one test (the shared server's database outlives tests)."""
    tag = secrets.token_hex(3)
    ids = [f"{n}-{tag}" for n in names]
    return ids[0] if len(ids) == 1 else ids


def direct_chat_id(a, b):
    lo, hi = sorted([a, b], key=lambda s: s.encode())
    return f"d:{lo}:{hi}"


# ---- the schema --------------------------------------------------------------------

class Field(NamedTuple):
    name: str               # the JSON (lowerCamelCase) name
    number: int
    type: str               # a scalar type, an enum or a message name
    repeated: bool
    oneof: Optional[str]


def _camel(snake):
    head, *rest = snake.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _load_schema(path):
    text = re.sub(r"//[^\n]*", "", path.read_text())
    enums = {}
    for name, body in re.findall(r"\benum\s+(\w+)\s*\{([^}]*)\}", text):
        enums[name] = {int(n): k for k, n in re.findall(r"(\w+)\s*=\s*(\d+)\s*;", body)}
    messages = {}
    for name, body in re.findall(r"\bmessage\s+(\w+)\s*\{((?:[^{}]|\{[^{}]*\})*)\}", text):
        oneof_of = {}
        for group, inner in re.findall(r"\boneof\s+(\w+)\s*\{([^}]*)\}", body):
            for fname in re.findall(r"(\w+)\s*=\s*\d+\s*;", inner):
                oneof_of[fname] = group
        fields = {}
        for rep, typ, fname, num in re.findall(
                r"(repeated\s+)?(\w+)\s+(\w+)\s*=\s*(\d+)\s*;", body):
            fields[_camel(fname)] = Field(_camel(fname), int(num), typ, bool(rep),
                                          oneof_of.get(fname))
        messages[name] = fields
    return enums, messages


ENUMS, MESSAGES = _load_schema(PROTO)
INT64 = {"int64", "uint64"}
VARINT = INT64 | {"uint32", "int32", "bool"}


def _default(f):
    if f.repeated:
        return []
    if f.type in ENUMS:
        return ENUMS[f.type][0]
    if f.type in VARINT:
        return False if f.type == "bool" else 0
    if f.type == "string":
        return ""
    if f.type == "bytes":
        return b""
    return None


def _with_defaults(mtype, obj):
    for f in MESSAGES[mtype].values():
        if f.name not in obj and f.oneof is None:
            obj[f.name] = _default(f)
    return obj


class ProtocolViolation(AssertionError):
    """A server frame that breaks docs/protocol.md's encoding rules."""


# ---- protobuf ----------------------------------------------------------------------

def _varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varint(data, i):
    n = shift = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ProtocolViolation("truncated or overlong varint")
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def pb_encode(mtype, obj):
    fields = MESSAGES[mtype]
    out = bytearray()
    for key, value in obj.items():
        f = fields[key]
        for v in (value if f.repeated else [value]):
            if f.type in ENUMS:
                num = v if isinstance(v, int) else {k: n for n, k in ENUMS[f.type].items()}[v]
                out += _varint(f.number << 3) + _varint(num)
            elif f.type in VARINT:
                out += _varint(f.number << 3) + _varint(int(v))
            else:
                if f.type == "string":
                    raw = v.encode()
                elif f.type == "bytes":
                    raw = bytes(v)
                else:
                    raw = pb_encode(f.type, v)
                out += _varint(f.number << 3 | 2) + _varint(len(raw)) + raw
    return bytes(out)


def pb_decode(mtype, data):
    by_number = {f.number: f for f in MESSAGES[mtype].values()}
    obj = {}
    i = 0
    while i < len(data):
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            raw, i = _read_varint(data, i)
        elif wire == 2:
            n, i = _read_varint(data, i)
            raw, i = data[i:i + n], i + n
            if i > len(data):
                raise ProtocolViolation(f"{mtype}: truncated field {number}")
        elif wire in (1, 5):
            i += 8 if wire == 1 else 4
            continue
        else:
            raise ProtocolViolation(f"{mtype}: wire type {wire}")
        f = by_number.get(number)
        if f is None:
            continue  # unknown fields are ignored (docs/protocol.md, Compatibility)
        if f.type in ENUMS:
            value = ENUMS[f.type].get(raw, raw)
        elif f.type == "int64":
            value = raw - (1 << 64) if raw >= 1 << 63 else raw
        elif f.type == "bool":
            value = bool(raw)
        elif f.type in VARINT:
            value = raw
        elif f.type == "string":
            value = bytes(raw).decode()
        elif f.type == "bytes":
            value = bytes(raw)
        else:
            value = pb_decode(f.type, raw)
        if f.repeated:
            obj.setdefault(f.name, []).append(value)
        else:
            if f.oneof:  # the last member seen wins
                for other in MESSAGES[mtype].values():
                    if other.oneof == f.oneof:
                        obj.pop(other.name, None)
            obj[f.name] = value
    return _with_defaults(mtype, obj)


# ---- proto3 JSON -------------------------------------------------------------------

def json_encode(mtype, obj):
    fields = MESSAGES[mtype]
    out = {}
    for key, value in obj.items():
        f = fields[key]

        def one(v):
            if f.type in INT64:
                return str(v)  # docs: send 64-bit integers as strings
            if f.type == "bytes":
                return base64.b64encode(v).decode()
            if f.type in MESSAGES:
                return json_encode(f.type, v)
            return v
        out[key] = [one(v) for v in value] if f.repeated else one(value)
    return out


def json_decode(mtype, obj, path=None):
    path = path or mtype
    if not isinstance(obj, dict):
        raise ProtocolViolation(f"{path}: expected an object, got {obj!r}")
    fields = MESSAGES[mtype]
    out = {}
    for key, value in obj.items():
        f = fields.get(key)
        if f is None or value is None:
            continue  # unknown fields are ignored; null means absent

        def one(v, where=f"{path}.{key}"):
            if f.type in INT64:
                if not isinstance(v, str):
                    raise ProtocolViolation(
                        f"{where}: 64-bit integers are written as decimal strings "
                        f"(docs/protocol.md, Encodings), got {v!r}")
                return int(v)
            if f.type in ENUMS:
                if not isinstance(v, str) or v not in ENUMS[f.type].values():
                    raise ProtocolViolation(f"{where}: enums are written by name, got {v!r}")
                return v
            if f.type == "bytes":
                return base64.b64decode(v)
            if f.type in MESSAGES:
                return json_decode(f.type, v, where)
            return v
        if f.repeated:
            out[key] = [one(v, f"{path}.{key}[{n}]") for n, v in enumerate(value)]
        else:
            out[key] = one(value)
    return _with_defaults(mtype, out)


def encode_client(frame, encoding):
    if encoding == "proto":
        return pb_encode("ClientFrame", frame)
    return json.dumps(json_encode("ClientFrame", frame))


def decode_server(data, encoding):
    if encoding == "proto":
        if not isinstance(data, bytes):
            raise ProtocolViolation(f"a text frame on a protobuf connection: {data!r}")
        return pb_decode("ServerFrame", data)
    if not isinstance(data, str):
        raise ProtocolViolation(f"a binary frame on a JSON connection: {data!r}")
    return json_decode("ServerFrame", json.loads(data))


def one_of(obj):
    """The (name, value) of the one member set in an Event (or a reply result)."""
    (name, value), = [(k, v) for k, v in obj.items() if k != "requestId"]
    return name, value


# ---- one session -------------------------------------------------------------------

class CommandError(AssertionError):
    def __init__(self, command, error):
        super().__init__(f"{command} failed: {error}")
        self.command = command
        self.error = error
        self.code = error["code"].removeprefix("ERROR_CODE_")


class ChatClient:
    """One WebSocket session of `user`. Every event is kept in `log` (arrival order,
    never consumed) and in `events` (consumed by wait_event)."""

    def __init__(self, ws, user, encoding):
        self.ws = ws
        self.user = user
        self.encoding = encoding
        self.hello = None
        self.events = []
        self.log = []
        self.failure = None
        self.closed = False
        self._pending = {}
        self._ids = itertools.count(1)
        self._new = asyncio.Event()
        self._reader = None

    @classmethod
    async def connect(cls, url, user, encoding="json", tok=None, in_query=False):
        tok = tok or token(user)
        headers = {} if in_query else {"Authorization": "Bearer " + tok}
        if in_query:
            url += "?access_token=" + tok
        ws = await asyncio.wait_for(websockets.connect(
            url, subprotocols=[SUBPROTOCOL[encoding]], extra_headers=headers,
            max_size=4 << 20, max_queue=None), TIMEOUT)
        c = cls(ws, user, encoding)
        assert ws.subprotocol == SUBPROTOCOL[encoding]
        first = decode_server(await asyncio.wait_for(ws.recv(), TIMEOUT), encoding)
        assert "event" in first and "hello" in first["event"], \
            f"the first frame must be hello (docs/protocol.md, Connecting), got {first}"
        c.hello = first["event"]["hello"]
        assert c.hello["userId"] == user, c.hello
        c._reader = asyncio.create_task(c._read())
        return c

    async def _read(self):
        try:
            async for data in self.ws:
                frame = decode_server(data, self.encoding)
                if frame.get("reply") is not None:
                    reply = frame["reply"]
                    fut = self._pending.pop(reply["requestId"], None)
                    if fut is None:
                        raise ProtocolViolation(f"a reply nobody asked for: {reply}")
                    if not fut.done():
                        fut.set_result(reply)
                elif frame.get("event") is not None:
                    event = one_of(frame["event"])
                    self.events.append(event)
                    self.log.append(event)
                    self._new.set()
        except websockets.ConnectionClosed:
            pass
        except Exception as e:  # surfaced by the next call or wait
            self.failure = e
        finally:
            self.closed = True
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(
                        f"{self.user}: connection closed ({self.ws.close_code}) "
                        "before the reply"))
            self._pending.clear()
            self._new.set()

    def _check(self):
        if self.failure:
            raise self.failure

    async def submit(self, command, **body):
        """Sends a command; returns a future of its reply (for pipelining)."""
        self._check()
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.ws.send(encode_client({"requestId": rid, command: body}, self.encoding))
        return fut

    async def request(self, command, timeout=None, **body):
        """The whole reply to one command: {"requestId", command or "error"}."""
        return await self._reply(await self.submit(command, **body), command, body, timeout)

    async def request_raw(self, data, rid, timeout=None):
        """Sends `data` as it is (a str goes as a text frame, bytes as binary) and
        returns the reply carrying `rid` (0: the one for a frame whose id the
        server could not read)."""
        self._check()
        fut = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        await self.ws.send(data)
        return await self._reply(fut, "a raw frame", data[:80], timeout)

    async def _reply(self, fut, command, body, timeout):
        try:
            reply = await asyncio.wait_for(fut, timeout or TIMEOUT)
        except asyncio.TimeoutError:
            self._check()
            raise AssertionError(f"{self.user}: no reply to {command} {body} "
                                 f"within {timeout or TIMEOUT}s") from None
        self._check()
        return reply

    async def call(self, command, **body):
        """The result of a command that must succeed."""
        return result_of(command, await self.request(command, **body))

    async def fails(self, code, command, **body):
        """Asserts that the command fails with ERROR_CODE_<code>; returns the error."""
        reply = await self.request(command, **body)
        assert "error" in reply, f"{self.user}: {command} {body}: expected {code}, got {reply}"
        assert reply["error"]["code"] == "ERROR_CODE_" + code, \
            f"{self.user}: {command} {body}: expected {code}, got {reply['error']}"
        return reply["error"]

    async def send(self, chat_id, text, cmid=None, **extra):
        return await self.call("sendMessage", chatId=chat_id, text=text,
                               clientMsgId=cmid or secrets.token_hex(8), **extra)

    async def ping(self):
        """A command round trip: the connection is open and serving."""
        r = await self.call("ping", clientTimeMs=1234)
        assert r["clientTimeMs"] == 1234, r
        assert r["serverTimeMs"] > 0, r

    async def wait_event(self, kind, pred=lambda e: True, timeout=None, **match):
        """Takes the first buffered `kind` event matching `pred` and the `match`
        field values, waiting up to `timeout` for it to arrive."""
        timeout = timeout or TIMEOUT
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def fits(e):
            return e[0] == kind and all(e[1].get(k) == v for k, v in match.items()) \
                and pred(e[1])
        while True:
            self._check()
            for n, e in enumerate(self.events):
                if fits(e):
                    del self.events[n]
                    return e[1]
            if self.closed:
                raise AssertionError(f"{self.user}: closed ({self.ws.close_code}) while "
                                     f"waiting for {kind} {match}")
            self._new.clear()
            try:
                await asyncio.wait_for(self._new.wait(), deadline - loop.time())
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"{self.user}: no {kind} event {match} within {timeout}s; "
                    f"unconsumed: {self.events[-8:]}") from None

    async def collect(self, kind, n, timeout=None, **match):
        """The next n matching events, in arrival order."""
        return [await self.wait_event(kind, timeout=timeout, **match) for _ in range(n)]

    def entries_seen(self, chat_id):
        """Seqs of the log-entry events of a chat, in arrival order."""
        return [e["seq"] for k, e in self.log if k in LOG_ENTRIES and e["chatId"] == chat_id]

    async def close(self):
        if self._reader:
            await self.ws.close()
            try:
                await asyncio.wait_for(self._reader, TIMEOUT)
            except asyncio.TimeoutError:
                self._reader.cancel()


async def replies(futures, timeout=None):
    """The replies to pipelined commands (from submit), in order."""
    return [await asyncio.wait_for(f, timeout or TIMEOUT) for f in futures]


def result_of(command, reply):
    if "error" in reply:
        raise CommandError(command, reply["error"])
    assert command in reply, f"the reply to {command} must carry `{command}`: {reply}"
    return reply[command]


async def read_log(client, chat_id):
    """Every entry of a chat as (kind, body), ascending, read newest page first and
    scrolling back (the way docs/protocol.md pages: beforeSeq = nextSeq)."""
    pages = []
    before = 0
    while True:
        page = await client.call("getHistory", chatId=chat_id, beforeSeq=before, limit=200)
        pages.insert(0, [one_of(e) for e in page["entries"]])
        if not page["hasMore"]:
            break
        assert page["nextSeq"] > 0 and (before == 0 or page["nextSeq"] < before), page
        before = page["nextSeq"]
    return [e for p in pages for e in p]


class Clients:
    """Opens sessions on one server and closes them all at the end."""

    def __init__(self, server):
        self.server = server
        self.all = []

    async def connect(self, user, encoding="json", **kw):
        # The gateway limits handshakes per address (40, refilling at 20/s): a
        # module's worth of tests can meet that limit; 429 says retry later.
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while True:
            try:
                c = await ChatClient.connect(self.server.url, user, encoding, **kw)
                break
            except websockets.InvalidStatusCode as e:
                if e.status_code != 429 or asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(0.2)
        self.all.append(c)
        return c

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await asyncio.gather(*(c.close() for c in self.all), return_exceptions=True)


def run(coro, timeout=90):
    return asyncio.run(asyncio.wait_for(coro, timeout * SCALE))


# ---- the server with a database ----------------------------------------------------

class ChatServer(Server):
    """chatcore-server with its data in `db_dir` (conftest.db_args); the directory
    belongs to the caller."""

    def __init__(self, db_dir, *extra):
        self.db_dir = db_dir
        self.extra = extra
        super().__init__(*db_args(db_dir), *extra)

    def restart(self):
        """A new process on the same database (this one must have ended)."""
        assert self.proc.poll() is not None
        return ChatServer(self.db_dir, *self.extra)

    killed = False

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.killed = True

    def shut_down(self):
        """SIGTERM, then what went wrong: a non-zero exit (a sanitizer's leak
        report exits 1) or a sanitizer's runtime report; None if nothing."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15 * SCALE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                return "did not exit within the drain timeout after SIGTERM"
        out = self.output()
        if not self.killed and self.proc.returncode != 0:
            return f"exited with {self.proc.returncode}: {out[-3000:]}"
        if "runtime error:" in out or "Sanitizer" in out:
            return f"sanitizer report: {out[-3000:]}"
        return None

    def http(self, method, path, body=None, tok=None, headers=None):
        """One HTTP request; returns an HttpResponse (the body parsed as JSON when
        it is JSON, else raw bytes)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=TIMEOUT)
        try:
            h = dict(headers or {})
            if tok:
                h["Authorization"] = "Bearer " + tok
            if body is not None and not isinstance(body, (bytes, str)):
                body = json.dumps(body)
                h.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            try:
                data = json.loads(data)
            except ValueError:
                pass
            return HttpResponse(resp.status, data, resp.headers)
        finally:
            conn.close()


class HttpResponse(NamedTuple):
    status: int
    body: object
    headers: object  # http.client.HTTPMessage

    def error_code(self):
        """The code of the API's error body {"error": {"code", "message"}}."""
        assert isinstance(self.body, dict) and isinstance(self.body.get("error"), dict), \
            f"HTTP {self.status}: expected an error body, got {self.body!r}"
        return self.body["error"]["code"].removeprefix("ERROR_CODE_")


class ServerFactory:
    """Starts servers, each on a fresh database directory unless given one; stops
    them and removes the directories at the end."""

    def __init__(self):
        self.servers = []
        self.dirs = []

    def new_db_dir(self):
        d = tempfile.TemporaryDirectory(prefix="chatcore-it-")
        self.dirs.append(d)
        return d.name

    def start(self, *extra, db_dir=None):
        s = ChatServer(db_dir or self.new_db_dir(), *extra)
        self.servers.append(s)
        return s

    def restart(self, server):
        s = server.restart()
        self.servers.append(s)
        return s

    def close(self):
        """Stops every server; fails if one of them ended badly."""
        problems = []
        for s in self.servers:
            problem = s.shut_down()
            if problem:
                problems.append(f"chatcore-server on port {s.port}: {problem}")
            s.stop()
        for d in self.dirs:
            d.cleanup()
        assert not problems, "\n".join(problems)
