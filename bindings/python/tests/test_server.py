"""chatcore.Server: the embedded chat server, driven by a real WebSocket client
(python3-websockets) speaking the JSON encoding of docs/protocol.md.

Callbacks run on the server's thread: they record what they saw into lists,
and the tests check the lists from the test's thread (an assert inside a
callback would only be logged)."""

import asyncio
import json
import logging
import os
import socket
import threading
import time

import pytest

import chatcore
from chatcore import jwt

websockets = pytest.importorskip("websockets", reason="python3-websockets is needed")

SCALE = 1 if os.environ.get("CHATCORE_SANITIZE", "none") in ("", "none") else 5
TIMEOUT = 5.0 * SCALE

# The application's own user system: opaque session tokens.
SESSIONS = {"tok-alice": "alice", "tok-bob": "bob", "tok-carol": "carol"}


def app_tokens(token):
    return SESSIONS.get(token)


class Client:
    """One WebSocket session: call() sends a command and returns its reply;
    events are kept in arrival order for event()."""

    def __init__(self, ws):
        self.ws = ws
        self.rid = 0
        self.events = []

    async def call(self, **command):
        self.rid += 1
        rid = str(self.rid)
        await self.ws.send(json.dumps({"requestId": rid, **command}))
        while True:
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if "reply" in frame and frame["reply"].get("requestId") == rid:
                return frame["reply"]
            self.events.append(frame["event"])

    async def event(self, kind):
        """The first buffered or coming event of `kind` (e.g. "message")."""
        while True:
            for i, ev in enumerate(self.events):
                if kind in ev:
                    return self.events.pop(i)[kind]
            frame = json.loads(await asyncio.wait_for(self.ws.recv(), TIMEOUT))
            if "event" in frame:
                self.events.append(frame["event"])


async def connect(server, token):
    ws = await websockets.connect(server.url, subprotocols=["chatcore.v1.json"],
                                  extra_headers={"Authorization": f"Bearer {token}"},
                                  open_timeout=TIMEOUT)
    c = Client(ws)
    hello = await c.event("hello")
    c.user = hello["userId"]
    return c


async def direct_chat(a, peer):
    reply = await a.call(createDirectChat={"peerId": peer})
    return reply["createDirectChat"]["chat"]["chatId"]


async def send(c, chat, cmid, text):
    return await c.call(sendMessage={"chatId": chat, "clientMsgId": cmid, "text": text})


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 6 * TIMEOUT))


# ---- tokens ----


def test_tokens_checked_by_the_application():
    seen = []

    def verify(token):
        seen.append(token)
        return app_tokens(token)

    async def go(server):
        alice = await connect(server, "tok-alice")
        assert alice.user == "alice"
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await connect(server, "tok-mallory")
        assert refused.value.status_code == 401
        assert "serverTimeMs" in (await alice.call(ping={}))["ping"]
        await alice.ws.close()

    with chatcore.Server(verify_token=verify) as server:
        run(go(server))
    assert seen == ["tok-alice", "tok-mallory"]


def test_tokens_checked_as_jwt():
    secret = b"0123456789abcdef0123456789abcdef"
    good = jwt.sign_hmac("HS256", secret, {"sub": "alice", "exp": int(time.time()) + 60})
    forged = jwt.sign_hmac("HS256", b"x" * 32, {"sub": "alice", "exp": 4102444800})

    async def go(server):
        alice = await connect(server, good)
        assert alice.user == "alice"
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await connect(server, forged)
        assert refused.value.status_code == 401
        await alice.ws.close()

    with jwt.Verifier("HS256", secret) as verifier:
        with chatcore.Server(jwt=verifier) as server:
            run(go(server))


def test_verifier_answers_that_are_not_a_user_are_refused(caplog):
    def verify(token):
        if token == "raise":
            raise RuntimeError("user database down")
        if token == "bad-id":
            return "not a user id!"
        return 42 if token == "int" else app_tokens(token)

    async def go(server):
        for token in ("raise", "bad-id", "int"):
            with pytest.raises(websockets.InvalidStatusCode) as refused:
                await connect(server, token)
            assert refused.value.status_code == 401
        bob = await connect(server, "tok-bob")  # still serving
        assert bob.user == "bob"
        await bob.ws.close()

    with caplog.at_level(logging.ERROR, logger="chatcore.server"):
        with chatcore.Server(verify_token=verify) as server:
            run(go(server))
    logged = "\n".join(r.getMessage() + str(r.exc_info and r.exc_info[1])
                       for r in caplog.records)
    assert "user database down" in logged
    assert "not a user id" in logged
    assert "returned int" in logged


# ---- before_store: moderation ----


def moderate(draft):
    if "spam" in draft.text:
        raise chatcore.Reject("no spam in this chat")
    if "ads" in draft.text:
        return chatcore.Reject("no ads", code="BAD_REQUEST")
    if "boom" in draft.text:
        raise ValueError("moderation service crashed")
    if "weird" in draft.text:
        return 3.5
    return draft.text.replace("darn", "****")


def test_rejected_message_gets_the_reason():
    stored = []

    async def go(server):
        alice, bob = await connect(server, "tok-alice"), await connect(server, "tok-bob")
        chat = await direct_chat(alice, "bob")
        reply = await send(alice, chat, "m1", "buy spam now")
        assert reply["error"]["code"] == "ERROR_CODE_FORBIDDEN"
        assert reply["error"]["message"] == "no spam in this chat"
        reply = await send(alice, chat, "m2", "cheap ads")
        assert reply["error"]["code"] == "ERROR_CODE_BAD_REQUEST"
        assert reply["error"]["message"] == "no ads"
        # Nothing was stored: the next message is seq 1, and it is what bob gets.
        reply = await send(alice, chat, "m3", "hello")
        assert reply["sendMessage"]["seq"] == "1"
        msg = await bob.event("message")
        assert (msg["text"], msg["seq"]) == ("hello", "1")
        await alice.ws.close()
        await bob.ws.close()

    with chatcore.Server(verify_token=app_tokens, before_store=moderate,
                         after_store=stored.append) as server:
        run(go(server))
    assert [e.text for e in stored] == ["hello"]


def test_rewritten_message_arrives_rewritten():
    drafts = []

    def hook(draft):
        drafts.append(draft)
        return moderate(draft)

    async def go(server):
        alice, bob = await connect(server, "tok-alice"), await connect(server, "tok-bob")
        chat = await direct_chat(alice, "bob")
        reply = await send(alice, chat, "m1", "darn it")
        assert "sendMessage" in reply
        msg = await bob.event("message")
        assert msg["text"] == "**** it"
        assert msg["senderId"] == "alice"
        # History holds the rewrite too.
        page = await bob.call(getHistory={"chatId": chat, "limit": 10})
        assert page["getHistory"]["entries"][0]["message"]["text"] == "**** it"
        # An edit goes through the same hook.
        reply = await alice.call(editMessage={"chatId": chat, "seq": "1",
                                              "text": "darn again"})
        assert "editMessage" in reply
        edited = await bob.event("messageEdited")
        assert edited["text"] == "**** again"
        await alice.ws.close()
        await bob.ws.close()

    with chatcore.Server(verify_token=app_tokens, before_store=hook) as server:
        run(go(server))
    assert [(d.kind, d.sender_id, d.text) for d in drafts] == [
        ("message", "alice", "darn it"), ("edit", "alice", "darn again")]
    assert drafts[0].client_msg_id == "m1" and drafts[0].chat_id == "d:alice:bob"
    assert drafts[1].target_seq == 1


def test_hook_that_raises_is_a_clear_error_and_the_server_keeps_running(caplog):
    async def go(server):
        alice, bob = await connect(server, "tok-alice"), await connect(server, "tok-bob")
        chat = await direct_chat(alice, "bob")
        for text in ("boom", "weird"):
            reply = await send(alice, chat, f"m-{text}", text)
            assert reply["error"]["code"] == "ERROR_CODE_INTERNAL"
            assert reply["error"]["message"] == "the server's message hook failed"
        reply = await send(alice, chat, "m-ok", "fine")  # the session goes on
        assert reply["sendMessage"]["seq"] == "1"
        assert (await bob.event("message"))["text"] == "fine"
        await alice.ws.close()
        await bob.ws.close()

    with caplog.at_level(logging.ERROR, logger="chatcore.server"):
        with chatcore.Server(verify_token=app_tokens, before_store=moderate) as server:
            run(go(server))
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2
    assert "moderation service crashed" in str(errors[0].exc_info[1])
    assert "returned float" in str(errors[1].exc_info[1])


# ---- after_store ----


def test_after_store_sees_every_stored_entry_with_its_seq(caplog):
    stored = []
    seen_on = set()

    def after(entry):
        seen_on.add(threading.current_thread().name)
        stored.append(entry)
        if entry.text == "explode":
            raise KeyError("indexer broke")

    async def go(server):
        alice, bob = await connect(server, "tok-alice"), await connect(server, "tok-bob")
        chat = await direct_chat(alice, "bob")
        seqs = []
        for i, text in enumerate(["one", "two", "explode", "four"]):
            reply = await send(alice if i % 2 == 0 else bob, chat, f"m{i}", text)
            seqs.append(int(reply["sendMessage"]["seq"]))
        # A retry (same clientMsgId) is a duplicate: not stored, not seen again.
        reply = await send(alice, chat, "m0", "one")
        assert reply["sendMessage"]["duplicate"] is True
        await alice.call(deleteMessage={"chatId": chat, "seq": "1"})
        await alice.ws.close()
        await bob.ws.close()
        return seqs

    with caplog.at_level(logging.ERROR, logger="chatcore.server"):
        with chatcore.Server(verify_token=app_tokens, after_store=after) as server:
            seqs = run(go(server))
    assert seqs == [1, 2, 3, 4]
    assert [(e.kind, e.seq, e.sender_id, e.text) for e in stored] == [
        ("message", 1, "alice", "one"), ("message", 2, "bob", "two"),
        ("message", 3, "alice", "explode"), ("message", 4, "bob", "four"),
        ("delete", 5, "alice", "")]
    assert stored[4].target_seq == 1
    assert all(e.chat_id == "d:alice:bob" and e.at_ms > 0 for e in stored)
    assert threading.current_thread().name not in seen_on  # the server's thread
    assert "indexer broke" in str(caplog.records[0].exc_info[1])


# ---- life ----


def test_stop_with_clients_connected_ends_cleanly():
    server = chatcore.Server(verify_token=app_tokens, drain_timeout=5.0 * SCALE).start()
    threads_before = threading.active_count()

    async def go():
        clients = [await connect(server, t) for t in ("tok-alice", "tok-bob", "tok-bob")]
        started = time.monotonic()
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
        took = time.monotonic() - started
        for c in clients:
            await asyncio.wait_for(c.ws.wait_closed(), TIMEOUT)
            assert c.ws.close_code == 1001
        return took

    took = run(go())
    assert took < 5.0 * SCALE  # the clients answered the close: no wait for the deadline
    assert not server.running
    server.stop()  # idempotent
    assert threading.active_count() <= threads_before
    with socket.socket() as s:  # the port is closed
        assert s.connect_ex(("127.0.0.1", server.port)) != 0
    with pytest.raises(chatcore.ClosedError):
        server.start()


def test_messages_survive_a_restart_with_a_database(tmp_path):
    db = str(tmp_path / "chat.db")

    async def write(server):
        alice = await connect(server, "tok-alice")
        chat = await direct_chat(alice, "bob")
        for i in range(3):
            await send(alice, chat, f"m{i}", f"text {i}")
        await alice.ws.close()
        return chat

    async def read(server, chat):
        bob = await connect(server, "tok-bob")
        page = await bob.call(getHistory={"chatId": chat, "limit": 10})
        await bob.ws.close()
        return [e["message"]["text"] for e in page["getHistory"]["entries"]]

    with chatcore.Server(db=db, verify_token=app_tokens) as server:
        chat = run(write(server))
    assert os.path.getsize(db) > 0
    with chatcore.Server(db=db, verify_token=app_tokens) as server:
        assert run(read(server, chat)) == ["text 0", "text 1", "text 2"]


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="exactly one"):
        chatcore.Server()
    with pytest.raises(TypeError, match="exactly one"):
        chatcore.Server(verify_token=app_tokens, jwt=object())
    with pytest.raises(TypeError, match="before_store must be callable"):
        chatcore.Server(verify_token=app_tokens, before_store="no")
    with pytest.raises(chatcore.ChatcoreError, match="expected HOST:PORT"):
        chatcore.Server("localhost:80", verify_token=app_tokens).start()
    with chatcore.Server(verify_token=app_tokens) as first:
        taken = f"127.0.0.1:{first.port}"
        with pytest.raises(chatcore.ChatcoreError) as busy:
            chatcore.Server(taken, verify_token=app_tokens).start()
        assert busy.value.code == chatcore.ErrorCode.IO
        assert "address already in use" in str(busy.value)
        assert first.running
    with pytest.raises(chatcore.ChatcoreError) as nodb:
        chatcore.Server(db=str(tmp_path / "no" / "such" / "dir.db"),
                        verify_token=app_tokens).start()
    assert nodb.value.code == chatcore.ErrorCode.IO
    assert "dir.db" in str(nodb.value)
    with pytest.raises(ValueError, match="code must be one of"):
        chatcore.Reject("x", code="NOPE")


def test_stop_from_a_callback_is_refused():
    results = []

    async def go(server):
        alice = await connect(server, "tok-alice")
        chat = await direct_chat(alice, "bob")
        reply = await send(alice, chat, "m1", "stop please")
        await alice.ws.close()
        return reply

    def hook(draft):
        try:
            server.stop()
        except chatcore.ChatcoreError as exc:
            results.append(exc.code)
        return None

    server = chatcore.Server(verify_token=app_tokens, before_store=hook)
    with server:
        reply = run(go(server))
    assert "sendMessage" in reply
    assert results == [chatcore.ErrorCode.STATE]


def test_a_server_left_running_is_stopped_at_exit(tmp_path):
    """A program that never calls stop(): the interpreter stops the server
    before it goes (its thread would otherwise call into a dying interpreter),
    and the process exits 0."""
    import subprocess
    import sys
    script = tmp_path / "leak.py"
    script.write_text(
        "import chatcore\n"
        "s = chatcore.Server(verify_token=lambda t: 'alice',\n"
        "                    after_store=lambda e: None).start()\n"
        "print(s.port, flush=True)\n")
    pkg_parent = os.path.dirname(os.path.dirname(chatcore.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg_parent] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    res = subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                         text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) > 0
