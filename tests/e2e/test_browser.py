"""End to end: the browser client that chatcore-server serves at /, in headless
Chromium, against a real server with SQLite. Two browsers (alice, bob) chat; the
server is killed and restarted under them; a third user (carol) is a protocol
client written here (python3-websockets), to fill a group with more history than
one page and to edit and delete."""
import asyncio
import itertools
import json
import os

import pytest

from conftest import WAIT_S, wait_until

WEB_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "chatcore-server",
                       "web")
DIRECT = "d:alice:bob"


# ---- the compiled-in files -------------------------------------------------------

@pytest.mark.parametrize("path,name,content_type", [
    ("/", "index.html", "text/html; charset=utf-8"),
    ("/index.html", "index.html", "text/html; charset=utf-8"),
    ("/app.js", "app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "style.css", "text/css; charset=utf-8"),
])
def test_static_assets(server, path, name, content_type):
    with open(os.path.join(WEB_DIR, name), "rb") as f:
        source = f.read()
    status, headers, body = server.http("GET", path)
    assert status == 200, (status, body[:200])
    assert body == source, f"{path} differs from web/{name}: rebuild?"
    assert headers["Content-Type"] == content_type
    assert headers["Cache-Control"] == "no-cache"
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2, etag
    if name == "index.html":
        assert "script-src 'self'" in headers["Content-Security-Policy"]

    # Revalidation: a matching tag (strong, weak, in a list, or *) -> 304, no body.
    for tag in (etag, "W/" + etag, f'"other", {etag}', "*"):
        status, headers304, body = server.http("GET", path, headers={"If-None-Match": tag})
        assert status == 304 and body == b"", (tag, status)
        assert headers304["ETag"] == etag
        assert "Content-Length" not in headers304, "a 304 has no body length (RFC 9110)"
    status, _, body = server.http("GET", path, headers={"If-None-Match": '"other"'})
    assert status == 200 and body == source

    status, headers, body = server.http("HEAD", path)
    assert status == 200 and body == b"" and headers["ETag"] == etag
    assert headers["Content-Length"] == str(len(source)), "HEAD says the GET's length"
    status, headers, _ = server.http("POST", path, body={})
    assert status == 405 and headers["Allow"] == "GET, HEAD"


def test_unknown_paths_are_not_static(server):
    for path in ("/app.js.map", "/web/app.js", "/index.htm", "/style.css/"):
        status, _, _ = server.http("GET", path)
        assert status == 404, (path, status)


# ---- two browsers ----------------------------------------------------------------

def test_two_users_chat_through_a_restart(server, browsers):
    alice, bob = browsers("alice"), browsers("bob")
    alice.login("alice")
    bob.login("bob")

    # alice opens the direct chat by name and writes; bob has not opened it.
    alice.open_direct("bob")
    alice.send("hi bob")
    wait_until(lambda: ("alice", "hi bob", "sent") in alice.messages(),
               "alice: her message in the log (acknowledged, with its seq)")
    wait_until(lambda: bob.chat_items().get(DIRECT, {}).get("unread") == 1,
               "bob: the new chat in his list with 1 unread")
    assert bob.chat_items()[DIRECT]["name"] == "alice"

    # bob opens it: he sees the message and reads it; alice sees the receipt.
    bob.open_chat(DIRECT)
    wait_until(lambda: bob.messages() == [("alice", "hi bob", "sent")],
               "bob: alice's message")
    wait_until(lambda: bob.chat_items()[DIRECT]["unread"] == 0, "bob: unread count back to 0")
    wait_until(lambda: alice.text("read-by") == "Read by bob", "alice: 'Read by bob'")

    # Presence: both are online, and each sees the other so.
    wait_until(lambda: bob.text("peer-presence") == "online", "bob: alice online")
    wait_until(lambda: alice.chat_items()[DIRECT]["presence"] == "online",
               "alice: bob online in her chat list")

    # Typing: bob types, alice sees it; bob sends, the indicator goes.
    bob.type_into("composer-input", "hello al")
    wait_until(lambda: alice.text("typing") == "bob is typing…", "alice: 'bob is typing…'")
    bob.el("composer-input").send_keys("ice")
    bob.click("composer-send")
    wait_until(lambda: ("bob", "hello alice", "sent") in alice.messages(),
               "alice: bob's reply")
    wait_until(lambda: alice.text("typing") == "", "alice: the typing indicator cleared")
    # alice has the chat open, so she has read the reply: no badge, and bob sees it.
    wait_until(lambda: bob.text("read-by") == "Read by alice", "bob: 'Read by alice'")
    wait_until(lambda: alice.chat_items()[DIRECT]["unread"] == 0, "alice: nothing unread")

    # The server dies (SIGKILL: no close frames). Both pages notice.
    server.kill()
    wait_until(lambda: alice.status() == "disconnected" and bob.status() == "disconnected",
               "both pages: disconnected")
    # A message written while offline waits in the outbox...
    alice.send("written while offline")
    wait_until(lambda: ("alice", "written while offline", "pending") in alice.messages(),
               "alice: the offline message shown as pending")

    # ... the server comes back on the same port and database, the pages reconnect
    # by themselves, and the outbox delivers it (once).
    server.start()
    alice.wait_connected()
    bob.wait_connected()
    wait_until(lambda: ("alice", "written while offline", "sent") in bob.messages(),
               "bob: the message alice wrote while offline")
    bob.send("after restart")
    expected = ["hi bob", "hello alice", "written while offline", "after restart"]
    wait_until(lambda: alice.texts() == expected, "alice: the whole conversation, in order")
    wait_until(lambda: bob.texts() == expected, "bob: the whole conversation, in order")
    wait_until(lambda: bob.text("peer-presence") == "online",
               "bob: alice online again after the restart")

    # History survived the restart: bob reloads his page and sees all of it.
    bob.open()
    bob.wait_connected()
    bob.open_chat(DIRECT)
    wait_until(lambda: bob.texts() == expected, "bob, reloaded: the history from the server")
    wait_until(lambda: [s for s, _, _ in bob.messages()] == ["alice", "bob", "alice", "bob"],
               "bob, reloaded: the senders")
    wait_until(lambda: bob.text("peer-presence") == "online", "bob, reloaded: alice online")

    # Every connection (the first, after the restart, after a reload) carried a
    # single-use connect ticket in its URL, never the token (proxies log URLs).
    for b in (alice, bob):
        urls = b.websocket_urls()
        assert len(urls) >= 2, urls
        assert all("ticket=" in u and "access_token" not in u for u in urls), urls
        assert len({u.split("ticket=")[1] for u in urls}) == len(urls), urls

    # alice closes her tab: bob sees her go offline.
    alice.close_tab()
    wait_until(lambda: bob.text("peer-presence").startswith("offline"),
               "bob: alice offline once her page closed")
    assert bob.chat_items()[DIRECT]["presence"] == "offline"


# ---- a group with more than one page of history ----------------------------------

def as_user(server, user, commands):
    """Logs `user` in with the dev login and sends `commands` ([(name, args)]) in
    order over the protocol with python3-websockets; returns the results. A
    RATE_LIMITED reply is retried after its retryAfterMs; other errors fail."""
    import websockets

    status, _, body = server.http("POST", "/v1/login", body={"user": user})
    assert status == 200, (status, body)
    token = json.loads(body)["token"]
    ids = itertools.count(1)

    async def call(ws, command, args):
        rid = str(next(ids))
        await ws.send(json.dumps({"requestId": rid, command: args}))
        while True:
            frame = json.loads(await ws.recv())
            if frame.get("reply", {}).get("requestId") == rid:
                return frame["reply"]

    async def run():
        results = []
        url = f"ws://127.0.0.1:{server.port}/ws?access_token={token}"
        async with websockets.connect(url, subprotocols=["chatcore.v1.json"]) as ws:
            assert "hello" in json.loads(await ws.recv())["event"]
            for command, args in commands:
                while True:
                    reply = await call(ws, command, args)
                    err = reply.get("error")
                    if not err:
                        results.append(reply[command])
                        break
                    assert err["code"] == "ERROR_CODE_RATE_LIMITED", (command, reply)
                    await asyncio.sleep(max(err.get("retryAfterMs", 100), 50) / 1000)
        return results

    return asyncio.run(asyncio.wait_for(run(), WAIT_S * 2))


def test_group_and_scroll_back(server, browsers):
    alice, bob = browsers("alice"), browsers("bob")
    alice.login("alice")
    bob.login("bob")

    alice.type_into("group-title", "Release crew")
    alice.type_into("group-members", "bob, carol")
    alice.click("create-group")
    wait_until(lambda: alice.text("chat-title") == "Release crew", "alice: the new group open")
    group = alice.js('return document.querySelector(\'[data-testid="chat-item"].active\')'
                     '.dataset.chatId;')
    assert group and not group.startswith("d:"), group
    wait_until(lambda: any("carol" in e and "bob" in e for e in alice.system_entries()),
               "alice: the membership entry adding bob and carol")

    # carol writes 70 messages (more than one page of history: 50), then edits the
    # last one and deletes the one before.
    texts = [f"carol {i}" for i in range(1, 71)]
    sent = as_user(server, "carol", [
        ("sendMessage", {"chatId": group, "clientMsgId": f"carol-{i}", "text": t})
        for i, t in enumerate(texts)])
    as_user(server, "carol", [
        ("editMessage", {"chatId": group, "seq": sent[69]["seq"], "text": "carol 70, edited"}),
        ("deleteMessage", {"chatId": group, "seq": sent[68]["seq"]})])
    final = texts[:68] + ["message deleted", "carol 70, edited"]
    wait_until(lambda: alice.texts() == final,
               "alice (group open): all 70 live, in order, with the edit and the deletion")
    wait_until(lambda: bob.chat_items().get(group) == {
        "name": "Release crew", "unread": 70, "presence": None},
        "bob: the group in his list with 70 unread")

    # bob opens it: the newest page (entries 24-73: 48 messages, the edit, the
    # deletion), then scrolling back loads the rest.
    bob.open_chat(group)
    wait_until(lambda: bob.texts() == final[22:], "bob: the newest page, in its current state")
    wait_until(lambda: bob.chat_items()[group]["unread"] == 0, "bob: all read")
    wait_until(lambda: bob.el("load-older").is_displayed(), "bob: 'Load older messages'")
    bob.js('document.getElementById("messages").scrollTop = 0;')  # the user scrolls up
    wait_until(lambda: bob.texts() == final, "bob: all 70 after scrolling back")
    wait_until(lambda: not bob.el("load-older").is_displayed(), "bob: nothing older left")
    assert bob.first_entry() == "system-entry", "bob: the group's first entry (members)"
    assert any("carol" in e for e in bob.system_entries())
