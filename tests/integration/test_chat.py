"""The chat service over real WebSockets: chatcore-server with its SQLite database,
driven by the client in chatclient.py (Debian's python3-websockets underneath).
Every rule checked here is a sentence of docs/protocol.md; the comments cite it.

Most tests share one server per module (each with its own users and chats, so they
stay independent); those that need other flags, a restart or a kill start their own.
"""
import asyncio
import secrets
import socket
import time

import pytest
import websockets

from chatclient import (SCALE, TIMEOUT, ChatClient, Clients, direct_chat_id,
                        json_decode, one_of, read_log, replies, result_of, run, unique)
from conftest import token

# The shared server lifts the message rate limit so that tests which send hundreds
# of messages do not measure it; test_rate_limits checks the limiter on its own.
NO_RATE_LIMIT = ("--message-rate", "1000000", "--message-burst", "1000000")


@pytest.fixture(scope="module")
def chat(servers):
    return servers.start("--dev-login", *NO_RATE_LIMIT)


def ms_now():
    return int(time.time() * 1000)


async def quiet(seconds=0.3):
    """A short bounded window in which something must NOT happen."""
    await asyncio.sleep(seconds * SCALE)


async def group_with(owner, members, title="crew"):
    r = await owner.call("createGroup", title=title, memberIds=members)
    return r["chat"]["chatId"]


def messages_of(entries):
    return [e for k, e in entries if k == "message"]


# ---- 1. one-to-one -------------------------------------------------------------------

@pytest.mark.parametrize("alice_enc,bob_enc",
                         [("json", "json"), ("proto", "proto"), ("json", "proto")])
def test_direct_chat_send_and_receive(chat, alice_enc, bob_enc):
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice, alice_enc)
            b = await cs.connect(bob, bob_enc)
            assert a.hello["maxFrameBytes"] == 65536 and a.hello["heartbeatMs"] > 0, a.hello
            assert a.hello["connectionId"] and a.hello["connectionId"] != b.hello["connectionId"]

            # Its id is direct_chat_id(you, peerId); created is false when it existed.
            chat_id = direct_chat_id(alice, bob)
            r = await a.call("createDirectChat", peerId=bob)
            assert r["created"] is True, r
            c = r["chat"]
            assert c["chatId"] == chat_id
            assert c["kind"] == "CHAT_KIND_DIRECT"
            assert sorted(c["memberIds"]) == sorted([alice, bob]) and c["memberCount"] == 2, c
            assert c["peerId"] == bob and c["createdAtMs"] > 0, c
            r = await a.call("createDirectChat", peerId=bob)
            assert r["created"] is False and r["chat"]["chatId"] == chat_id, r
            r = await b.call("createDirectChat", peerId=alice)
            assert r["created"] is False and r["chat"]["chatId"] == chat_id, r
            assert r["chat"]["peerId"] == alice, r

            # A direct chat's log starts empty: the first message is seq 1.
            acks = []
            for n in range(3):
                ack = await a.send(chat_id, f"hello {n} ü", cmid=f"a-{n}")
                assert ack["chatId"] == chat_id and ack["seq"] == n + 1, ack
                assert ack["messageId"] and ack["sentAtMs"] > 0 and ack["duplicate"] is False, ack
                acks.append(ack)
            assert len({x["messageId"] for x in acks}) == 3

            # Every member's connections, the sender's included, get the message event.
            for who in (b, a):
                for n, ack in enumerate(acks):
                    ev = await who.wait_event("message", chatId=chat_id, seq=ack["seq"])
                    assert ev["senderId"] == alice and ev["text"] == f"hello {n} ü", ev
                    assert ev["clientMsgId"] == f"a-{n}" and ev["messageId"] == ack["messageId"]
                    assert ev["sentAtMs"] == ack["sentAtMs"] and ev["updatedSeq"] == ack["seq"], ev
                assert who.entries_seen(chat_id) == [1, 2, 3]

            # Bob answers with a payload only (bytes survive both encodings).
            blob = bytes(range(256))
            ack = await b.call("sendMessage", chatId=chat_id, clientMsgId="b-1", payload=blob)
            assert ack["seq"] == 4, ack
            for who in (a, b):
                ev = await who.wait_event("message", chatId=chat_id, seq=4)
                assert ev["payload"] == blob and ev["text"] == "" and ev["senderId"] == bob, ev
    run(go())


def test_direct_chat_id_orders_bytewise(chat):
    # "min/max compare the user ids bytewise ... "Bob" < "alice""
    upper, lower = unique("Bob", "alice")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(lower)
            r = await a.call("createDirectChat", peerId=upper)
            assert r["chat"]["chatId"] == f"d:{upper}:{lower}", r
    run(go())


# ---- 2. groups -----------------------------------------------------------------------

def test_group_of_five(chat):
    owner, m1, m2, m3, m4, dave, outsider = unique("owner", "m1", "m2", "m3", "m4", "dave",
                                                   "outsider")

    async def go():
        async with Clients(chat) as cs:
            o = await cs.connect(owner)
            members = [o] + [await cs.connect(u) for u in (m1, m2, m3, m4)]
            d = await cs.connect(dave)
            x = await cs.connect(outsider)

            r = await o.call("createGroup", title="Five", memberIds=[m1, m2, m3, m4])
            g = r["chat"]
            chat_id = g["chatId"]
            assert r["created"] is True and g["kind"] == "CHAT_KIND_GROUP", r
            assert not chat_id.startswith("d:"), chat_id
            assert g["title"] == "Five" and g["memberCount"] == 5, g
            assert sorted(g["memberIds"]) == sorted([owner, m1, m2, m3, m4]), g
            # "The group's log starts with a membershipChanged entry (seq 1) adding everyone."
            assert g["lastSeq"] == 1, g
            for c in members:
                ev = await c.wait_event("membershipChanged", chatId=chat_id)
                assert ev["seq"] == 1 and ev["byUserId"] == owner, ev
                assert {m1, m2, m3, m4} <= set(ev["addedUserIds"]) <= {owner, m1, m2, m3, m4}

            # Each of the five sends three, all at once.
            async def send3(c):
                return [await c.send(chat_id, f"{c.user} #{n}", cmid=f"{c.user}-{n}")
                        for n in range(3)]
            acks = [a for batch in await asyncio.gather(*(send3(c) for c in members))
                    for a in batch]
            assert sorted(a["seq"] for a in acks) == list(range(2, 17)), acks
            by_seq = {a["seq"]: a for a in acks}
            for c in members:
                evs = await c.collect("message", 15, chatId=chat_id)
                # "on one connection, a chat's entries arrive in seq order", gap-free.
                assert [e["seq"] for e in evs] == list(range(2, 17)), (c.user, evs)
                for e in evs:
                    assert e["messageId"] == by_seq[e["seq"]]["messageId"], e
                    assert e["text"] == f"{e['senderId']} #{e['clientMsgId'][-1]}", e
            await d.ping()
            assert d.entries_seen(chat_id) == [], "dave is no member yet"

            # Someone outside the chat cannot add anyone (NOT_MEMBER: "Commands on a
            # chat require membership"; FORBIDDEN: addMembers "only members may add").
            r = await x.request("addMembers", chatId=chat_id, userIds=[outsider])
            assert r.get("error", {}).get("code") in ("ERROR_CODE_NOT_MEMBER",
                                                      "ERROR_CODE_FORBIDDEN"), r

            # addMembers: "Any member may add members"; one entry, to every member
            # including the added one.
            r = await members[1].call("addMembers", chatId=chat_id, userIds=[dave])
            assert r["seq"] == 17 and r["addedUserIds"] == [dave] and r["byUserId"] == m1, r
            for c in members + [d]:
                ev = await c.wait_event("membershipChanged", chatId=chat_id, seq=17)
                assert ev["addedUserIds"] == [dave] and ev["removedUserIds"] == [], ev
            # Users already in the group are left out; nobody added: no seq, no entry.
            r = await o.call("addMembers", chatId=chat_id, userIds=[m1, dave])
            assert r["seq"] == 0 and r["addedUserIds"] == [], r

            # "only the owner (or an admin) may remove others, and the owner cannot be
            # removed by anyone else"
            await members[1].fails("FORBIDDEN", "removeMembers", chatId=chat_id, userIds=[m2])
            await members[1].fails("FORBIDDEN", "removeMembers", chatId=chat_id, userIds=[owner])

            # removeMembers: the removed user gets it too, as the last event of the chat.
            r = await o.call("removeMembers", chatId=chat_id, userIds=[m4])
            assert r["seq"] == 18 and r["removedUserIds"] == [m4] and r["byUserId"] == owner, r
            for c in members + [d]:
                ev = await c.wait_event("membershipChanged", chatId=chat_id, seq=18)
                assert ev["removedUserIds"] == [m4], ev
            await members[4].fails("NOT_MEMBER", "sendMessage", chatId=chat_id,
                                   clientMsgId="late", text="still here?")

            # leaveChat: byUserId equal to the removed user.
            r = await members[3].call("leaveChat", chatId=chat_id)
            assert r["seq"] == 19 and r["removedUserIds"] == [m3] and r["byUserId"] == m3, r
            for c in members[:4] + [d]:
                ev = await c.wait_event("membershipChanged", chatId=chat_id, seq=19)
                assert ev["removedUserIds"] == [m3] and ev["byUserId"] == m3, ev
            await members[3].fails("NOT_MEMBER", "getHistory", chatId=chat_id)

            ack = await d.send(chat_id, "hi all, dave here")
            assert ack["seq"] == 20, ack
            for c in (o, members[1], members[2], d):
                await c.wait_event("message", chatId=chat_id, seq=20)
            await members[3].ping()
            await members[4].ping()
            await quiet()
            # Everyone saw a gap-free run of the entries while they were members; the
            # removed and the leaving users nothing after their removal.
            for c in (o, members[1], members[2]):
                assert c.entries_seen(chat_id) == list(range(1, 21)), (c.user, c.entries_seen(chat_id))
            assert d.entries_seen(chat_id) == [17, 18, 19, 20]
            assert members[4].entries_seen(chat_id) == list(range(1, 19))
            assert members[3].entries_seen(chat_id) == list(range(1, 20))
            assert x.entries_seen(chat_id) == []

            # The log holds each change once, in order.
            log = await read_log(o, chat_id)
            assert [e["seq"] for _, e in log] == list(range(1, 21))
            assert [k for k, _ in log if k == "membershipChanged"] == ["membershipChanged"] * 4
    run(go())


# ---- 3. history paging ---------------------------------------------------------------

def test_history_paging(chat):
    alice, bob = unique("alice", "bob")
    N = 250

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            chat_id = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            futs = [await (a if n % 2 else b).submit(
                        "sendMessage", chatId=chat_id, clientMsgId=f"h-{n}", text=f"msg {n}")
                    for n in range(N)]
            acks = [result_of("sendMessage", r) for r in await replies(futs)]
            cmid_at = {ack["seq"]: f"h-{n}" for n, ack in enumerate(acks)}
            assert sorted(cmid_at) == list(range(1, N + 1))

            def seqs(page):
                s = [one_of(e)[1]["seq"] for e in page["entries"]]
                assert s == sorted(s), f"entries come in ascending seq order: {s}"
                for e in page["entries"]:
                    kind, m = one_of(e)
                    assert kind == "message" and m["clientMsgId"] == cmid_at[m["seq"]], m
                return s

            # Newest page first, then scroll back with beforeSeq = nextSeq.
            page = await a.call("getHistory", chatId=chat_id, limit=50)
            assert page["chatId"] == chat_id and page["firstSeq"] == 1 and page["lastSeq"] == N
            got, sizes = [], []
            while True:
                s = seqs(page)
                got = s + got
                sizes.append(len(s))
                if not page["hasMore"]:
                    break
                page = await a.call("getHistory", chatId=chat_id, beforeSeq=page["nextSeq"],
                                    limit=50)
            assert got == list(range(1, N + 1)), "every seq exactly once"
            assert sizes == [50] * 5, sizes
            assert seqs(await a.call("getHistory", chatId=chat_id, beforeSeq=251, limit=50)) \
                == list(range(201, 251))

            # Forward with afterSeq: the oldest `limit` entries of the range.
            got, after = [], 10
            while True:
                page = await b.call("getHistory", chatId=chat_id, afterSeq=after, limit=60)
                s = seqs(page)
                assert s and s[0] == after + 1, (after, s)
                got += s
                if not page["hasMore"]:
                    break
                after = page["nextSeq"]
            assert got == list(range(11, N + 1))

            # Both bounds, exclusive.
            page = await a.call("getHistory", chatId=chat_id, afterSeq=10, beforeSeq=20)
            assert seqs(page) == list(range(11, 20)) and not page["hasMore"], page
            page = await a.call("getHistory", chatId=chat_id, afterSeq=N)
            assert page["entries"] == [] and not page["hasMore"] and page["lastSeq"] == N

            # limit: 0 means 50; capped at 200.
            assert seqs(await a.call("getHistory", chatId=chat_id)) == list(range(201, 251))
            page = await a.call("getHistory", chatId=chat_id, limit=1000)
            assert seqs(page) == list(range(51, 251)) and page["hasMore"], "capped at 200"
            page = await a.call("getHistory", chatId=chat_id, afterSeq=3, limit=1000)
            assert seqs(page) == list(range(4, 204)) and page["hasMore"]

            # "if both are set, afterSeq < beforeSeq"
            await a.fails("BAD_REQUEST", "getHistory", chatId=chat_id, afterSeq=20, beforeSeq=20)
            await a.fails("BAD_REQUEST", "getHistory", chatId=chat_id, afterSeq=30, beforeSeq=20)

            # sync from 0 reads the chat from its first entry; its limit caps a chat.
            r = await a.call("sync", chats=[{"chatId": chat_id}], limit=100)
            (res,) = r["chats"]
            assert res["error"] == "ERROR_CODE_UNSPECIFIED" and res["hasMore"], res
            assert [one_of(e)[1]["seq"] for e in res["entries"]] == list(range(1, 101))
            await a.ping()
    run(go())


# ---- 4. idempotent sends -------------------------------------------------------------

def test_idempotent_retry(chat):
    alice, bob, carol = unique("alice", "bob", "carol")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            chat_id = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            first = await a.send(chat_id, "once", cmid="retry-1")
            again = await a.send(chat_id, "once", cmid="retry-1")
            assert first["duplicate"] is False and again["duplicate"] is True, (first, again)
            for k in ("seq", "messageId", "sentAtMs", "chatId"):
                assert again[k] == first[k], (k, first, again)

            # Two copies in flight at once: still one message.
            f1 = await a.submit("sendMessage", chatId=chat_id, clientMsgId="retry-2", text="twice")
            f2 = await a.submit("sendMessage", chatId=chat_id, clientMsgId="retry-2", text="twice")
            r1, r2 = [result_of("sendMessage", r) for r in await replies([f1, f2])]
            assert r1["seq"] == r2["seq"] == first["seq"] + 1, (r1, r2)
            assert sorted([r1["duplicate"], r2["duplicate"]]) == [False, True], (r1, r2)

            # "Reusing a clientMsgId for a different message is answered with CONFLICT."
            await a.fails("CONFLICT", "sendMessage", chatId=chat_id, clientMsgId="retry-1",
                          text="something else")
            # The server remembers (chat, sender, clientMsgId): the same id in another
            # chat is another message.
            other = (await a.call("createDirectChat", peerId=carol))["chat"]["chatId"]
            r = await a.send(other, "once", cmid="retry-1")
            assert r["seq"] == 1 and r["duplicate"] is False, r
            # Another sender's ids are their own.
            mine = await b.send(chat_id, "once", cmid="retry-1")
            assert mine["duplicate"] is False and mine["seq"] == first["seq"] + 2, mine

            # Bob saw each message once; the log holds each once.
            evs = await b.collect("message", 3, chatId=chat_id)
            assert [e["seq"] for e in evs] == [1, 2, 3], evs
            await b.ping()
            await quiet()
            assert b.entries_seen(chat_id) == [1, 2, 3]
            log = await read_log(a, chat_id)
            assert [(e["seq"], e["senderId"], e["clientMsgId"]) for e in messages_of(log)] == \
                [(1, alice, "retry-1"), (2, alice, "retry-2"), (3, bob, "retry-1")]
    run(go())


# ---- 5. resume -----------------------------------------------------------------------

def test_resume_with_sync(chat):
    alice, bob, carol = unique("alice", "bob", "carol")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            chat_id = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            await a.send(chat_id, "one")
            await b.send(chat_id, "two")
            await b.wait_event("message", chatId=chat_id, seq=2)
            applied = 2
            await b.close()

            sent = [await a.send(chat_id, f"while away {n}", cmid=f"away-{n}") for n in range(10)]
            assert [s["seq"] for s in sent] == list(range(3, 13))
            c = await cs.connect(carol)
            other = await group_with(c, [alice])  # bob is not in it

            b = await cs.connect(bob)
            r = await b.call("sync", chats=[
                {"chatId": chat_id, "lastSeenSeq": applied},
                {"chatId": other, "lastSeenSeq": 0},
                {"chatId": "g:no-such-chat-" + secrets.token_hex(4), "lastSeenSeq": 0},
            ])
            mine, not_mine, unknown = r["chats"]  # "one entry per requested chat, in order"
            assert mine["chatId"] == chat_id and mine["error"] == "ERROR_CODE_UNSPECIFIED", mine
            got = [one_of(e) for e in mine["entries"]]
            assert [(k, e["seq"], e["clientMsgId"], e["text"]) for k, e in got] == \
                [("message", n + 3, f"away-{n}", f"while away {n}") for n in range(10)]
            assert mine["lastSeq"] == 12 and not mine["hasMore"] and mine["firstSeq"] == 1, mine
            assert not_mine["chatId"] == other and not_mine["error"] == "ERROR_CODE_NOT_MEMBER"
            assert not_mine["entries"] == [], not_mine
            assert unknown["error"] == "ERROR_CODE_NOT_FOUND" and unknown["entries"] == [], unknown

            # Up to date: nothing to replay. A small limit: hasMore, then getHistory.
            r = await b.call("sync", chats=[{"chatId": chat_id, "lastSeenSeq": 12}])
            assert r["chats"][0]["entries"] == [] and not r["chats"][0]["hasMore"], r
            r = await b.call("sync", chats=[{"chatId": chat_id, "lastSeenSeq": applied}], limit=4)
            (res,) = r["chats"]
            assert [one_of(e)[1]["seq"] for e in res["entries"]] == [3, 4, 5, 6] and res["hasMore"]
            page = await b.call("getHistory", chatId=chat_id, afterSeq=6)
            assert [one_of(e)[1]["seq"] for e in page["entries"]] == list(range(7, 13))

            # Live events flow again after the reconnect.
            await a.send(chat_id, "welcome back")
            await b.wait_event("message", chatId=chat_id, seq=13)
    run(go())


# ---- 6. several devices --------------------------------------------------------------

def test_multi_device(chat):
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(chat) as cs:
            a1 = await cs.connect(alice)
            a2 = await cs.connect(alice, "proto")
            b = await cs.connect(bob)
            chat_id = (await a1.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            for n in range(3):
                await a1.send(chat_id, f"from device 1: {n}", cmid=f"d1-{n}")
            for c in (a1, a2, b):
                evs = await c.collect("message", 3, chatId=chat_id)
                assert [(e["seq"], e["clientMsgId"]) for e in evs] == \
                    [(1, "d1-0"), (2, "d1-1"), (3, "d1-2")], (c.user, evs)

            # markRead on one device: a receipt for the other device and for bob.
            r = await a2.call("markRead", chatId=chat_id, seq=3)
            assert r["readSeq"] == 3 and r["unreadCount"] == 0, r
            for c in (a1, b):
                ev = await c.wait_event("receipt", chatId=chat_id, userId=alice)
                assert ev["readSeq"] == 3 and ev["readAtMs"] > 0, ev

            # Bob read one of alice's three: two unread; alice's devices learn it.
            r = await b.call("markRead", chatId=chat_id, seq=1)
            assert r["readSeq"] == 1 and r["unreadCount"] == 2, r
            for c in (a1, a2):
                ev = await c.wait_event("receipt", chatId=chat_id, userId=bob)
                assert ev["readSeq"] == 1, ev
            # "The pointer never moves backwards."
            await b.call("markRead", chatId=chat_id, seq=3)
            r = await b.call("markRead", chatId=chat_id, seq=2)
            assert r["readSeq"] == 3 and r["unreadCount"] == 0, r

            # A send from the second device reaches the first, with its clientMsgId.
            await a2.send(chat_id, "from device 2", cmid="d2-0")
            ev = await a1.wait_event("message", chatId=chat_id, clientMsgId="d2-0")
            assert ev["seq"] == 4 and ev["senderId"] == alice, ev
            await b.wait_event("message", chatId=chat_id, seq=4)
    run(go())


# ---- 7. an offline member catches up -------------------------------------------------

def test_offline_member_catches_up(chat):
    alice, bob, carol = unique("alice", "bob", "carol")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            direct = (await a.call("createDirectChat", peerId=carol))["chat"]["chatId"]
            await a.send(direct, "are you there?")
            await a.send(direct, "carol?")
            group = await group_with(a, [bob, carol], title="Away team")
            for n in range(3):
                await a.send(group, f"a{n}")
                await b.send(group, f"b{n}")
            await a.call("markRead", chatId=group, seq=7)

            c = await cs.connect(carol)  # her first connection ever
            r = await c.call("listChats")
            by_id = {ch["chatId"]: ch for ch in r["chats"]}
            assert set(by_id) == {group, direct}, r
            assert not r["hasMore"] and r["nextCursor"] == "", r
            # "ordered by chat id (bytewise)" (the group is the more recently active)
            assert [ch["chatId"] for ch in r["chats"]] == [direct, group], r
            g = by_id[group]
            assert g["kind"] == "CHAT_KIND_GROUP" and g["title"] == "Away team", g
            assert g["lastSeq"] == 7 and g["readSeq"] == 0 and g["unreadCount"] == 6, g
            assert g["memberCount"] == 3, g
            assert g["lastMessage"] and g["lastMessage"]["text"] == "b2", g
            d = by_id[direct]
            assert d["kind"] == "CHAT_KIND_DIRECT" and d["peerId"] == alice, d
            assert d["lastSeq"] == 2 and d["unreadCount"] == 2, d

            # Paged: one chat a page.
            p1 = await c.call("listChats", limit=1)
            assert [ch["chatId"] for ch in p1["chats"]] == [direct] and p1["hasMore"], p1
            assert p1["nextCursor"], p1
            p2 = await c.call("listChats", limit=1, cursor=p1["nextCursor"])
            assert [ch["chatId"] for ch in p2["chats"]] == [group] and not p2["hasMore"], p2
            assert p2["nextCursor"] == "", "non-empty exactly when hasMore"
            # "anything else is BAD_REQUEST"
            await c.fails("BAD_REQUEST", "listChats", cursor="not-a-cursor")

            # Alice read everything in the group but sees her count of bob's messages.
            mine = {ch["chatId"]: ch for ch in (await a.call("listChats"))["chats"]}
            assert mine[group]["readSeq"] == 7 and mine[group]["unreadCount"] == 0, mine

            log = await read_log(c, group)
            assert [k for k, _ in log] == ["membershipChanged"] + ["message"] * 6
            assert [e["text"] for e in messages_of(log)] == ["a0", "b0", "a1", "b1", "a2", "b2"]
            r = await c.call("sync", chats=[{"chatId": group}, {"chatId": direct}])
            assert [[one_of(e)[1]["seq"] for e in ch["entries"]] for ch in r["chats"]] == \
                [list(range(1, 8)), [1, 2]], r

            r = await c.call("markRead", chatId=group, seq=7)
            assert r["unreadCount"] == 0, r
    run(go())


# ---- 8. refusals ---------------------------------------------------------------------

def test_refusals_keep_the_connection_open(chat):
    alice, bob, mallory = unique("alice", "bob", "mallory")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            m = await cs.connect(mallory)
            direct = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            await a.send(direct, "private")
            group = await group_with(a, [bob])
            unknown = "g:unknown-" + secrets.token_hex(4)

            async def refused(client, code, command, **body):
                await client.fails(code, command, **body)
                await client.ping()  # the connection stays open and serving

            for chat_id in (direct, group):
                await refused(m, "NOT_MEMBER", "sendMessage", chatId=chat_id,
                              clientMsgId="m-1", text="let me in")
                await refused(m, "NOT_MEMBER", "getHistory", chatId=chat_id)
                await refused(m, "NOT_MEMBER", "markRead", chatId=chat_id, seq=1)
                await refused(m, "NOT_MEMBER", "setTyping", chatId=chat_id,
                              state="TYPING_STATE_STARTED")
                await refused(m, "NOT_MEMBER", "editMessage", chatId=chat_id, seq=1, text="x")
                await refused(m, "NOT_MEMBER", "deleteMessage", chatId=chat_id, seq=1)
            await refused(m, "NOT_MEMBER", "leaveChat", chatId=group)

            for command, body in [
                    ("sendMessage", dict(clientMsgId="m-2", text="anyone?")),
                    ("getHistory", {}), ("markRead", dict(seq=1)),
                    ("setTyping", dict(state="TYPING_STATE_STARTED")),
                    ("editMessage", dict(seq=1, text="x")), ("deleteMessage", dict(seq=1)),
                    ("addMembers", dict(userIds=[bob])), ("leaveChat", {})]:
                await refused(m, "NOT_FOUND", command, chatId=unknown, **body)
            await refused(m, "NOT_FOUND", "sendMessage", chatId="g:" + "x" * 158,
                          clientMsgId="m-3", text="longest id")  # 160 bytes: valid syntax
            await refused(a, "NOT_FOUND", "editMessage", chatId=direct, seq=999, text="x")

            ok = dict(chatId=direct, clientMsgId="ok-id", text="fine")
            for change in [dict(chatId=""), dict(chatId="bad chat id"), dict(chatId="g:a/b"),
                           dict(chatId="g:" + "x" * 159), dict(clientMsgId=""),
                           dict(clientMsgId="a/b"), dict(clientMsgId="x" * 65),
                           dict(text="")]:
                await refused(a, "BAD_REQUEST", "sendMessage", **{**ok, **change})
            for peer in ("", alice, "has:colon", "has space", "x" * 65):
                await refused(a, "BAD_REQUEST", "createDirectChat", peerId=peer)
            await refused(a, "BAD_REQUEST", "createGroup", title="t" * 257)
            await refused(a, "BAD_REQUEST", "createGroup", memberIds=["bad user"])
            await refused(a, "BAD_REQUEST", "getHistory", chatId="bad id")
            await refused(a, "BAD_REQUEST", "editMessage", chatId=direct, seq=1, text="")
            await refused(a, "BAD_REQUEST", "addMembers", chatId=group, userIds=[])
            await refused(a, "BAD_REQUEST", "setTyping", chatId=direct)  # no state

            # 16 KiB per string or bytes field, counted in bytes.
            assert (await a.send(direct, "x" * 16384))["seq"] > 0
            assert (await a.send(direct, "é" * 8192))["seq"] > 0
            await refused(a, "TOO_LARGE", "sendMessage", **{**ok, "text": "x" * 16385})
            await refused(a, "TOO_LARGE", "sendMessage", **{**ok, "text": "é" * 8193})
            await refused(a, "TOO_LARGE", "sendMessage", chatId=direct, clientMsgId="big",
                          payload=b"\0" * 16385)
            await refused(a, "TOO_LARGE", "createGroup",
                          memberIds=[f"u{n}" for n in range(1025)])

            # "Direct chats have fixed members: addMembers, removeMembers and leaveChat
            # on them are FORBIDDEN."
            await refused(a, "FORBIDDEN", "addMembers", chatId=direct, userIds=[mallory])
            await refused(a, "FORBIDDEN", "removeMembers", chatId=direct, userIds=[bob])
            await refused(a, "FORBIDDEN", "leaveChat", chatId=direct)
            assert (await a.call("getHistory", chatId=direct))["lastSeq"] == 3

            # Nothing refused was stored, and nothing reached mallory.
            log = await read_log(a, direct)
            assert [e["text"][:7] for e in messages_of(log)] == ["private", "x" * 7, "é" * 7]
            assert m.log == [] and not m.closed and not a.closed
    run(go())


# ---- 9. edit and delete --------------------------------------------------------------

def test_edit_and_delete(chat):
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            group = await group_with(a, [bob])
            s = (await a.send(group, "Meeting at 2pm", cmid="meeting"))["seq"]
            assert s == 2

            r = await a.call("editMessage", chatId=group, seq=s, text="Meeting moved to 3pm")
            assert r["seq"] == s + 1 and r["targetSeq"] == s and r["editedAtMs"] > 0, r
            for c in (a, b):
                ev = await c.wait_event("messageEdited", chatId=group, seq=s + 1)
                assert ev["targetSeq"] == s and ev["editorId"] == alice, ev
                assert ev["text"] == "Meeting moved to 3pm" and ev["editedAtMs"] == r["editedAtMs"]

            # Not your message: FORBIDDEN, and nothing appended.
            await b.fails("FORBIDDEN", "editMessage", chatId=group, seq=s, text="mine now")
            await b.fails("FORBIDDEN", "deleteMessage", chatId=group, seq=s)

            r = await a.call("deleteMessage", chatId=group, seq=s)
            assert r["seq"] == s + 2 and r["targetSeq"] == s and r["deletedAtMs"] > 0, r
            for c in (a, b):
                ev = await c.wait_event("messageDeleted", chatId=group, seq=s + 2)
                assert ev["targetSeq"] == s and ev["deletedBy"] == alice, ev
            # "Deleting a deleted message succeeds again with the original deletion's seq."
            again = await a.call("deleteMessage", chatId=group, seq=s)
            assert again["seq"] == s + 2 and again["targetSeq"] == s, again
            # Editing a deleted message: CONFLICT.
            await a.fails("CONFLICT", "editMessage", chatId=group, seq=s, text="undelete?")

            # Another message edited twice: the history gives its current state.
            t = (await a.send(group, "v1"))["seq"]
            assert t == s + 3, "no entry was appended for the refused commands"
            await a.call("editMessage", chatId=group, seq=t, text="v2")
            last = await a.call("editMessage", chatId=group, seq=t, text="v3")

            log = await read_log(b, group)
            assert [e["seq"] for _, e in log] == list(range(1, last["seq"] + 1))
            kinds = {e["seq"]: (k, e) for k, e in log}
            k, tomb = kinds[s]
            assert k == "message" and tomb["deleted"] is True, tomb
            assert tomb["text"] == "" and tomb["payload"] == b"", tomb
            assert tomb["updatedSeq"] == s + 2 and tomb["editedAtMs"] > 0, tomb
            assert tomb["clientMsgId"] == "meeting" and tomb["senderId"] == alice, tomb
            assert kinds[s + 1][0] == "messageEdited" and kinds[s + 1][1]["targetSeq"] == s
            assert kinds[s + 2][0] == "messageDeleted" and kinds[s + 2][1]["targetSeq"] == s
            k, cur = kinds[t]
            assert cur["text"] == "v3" and cur["updatedSeq"] == last["seq"], cur
            assert cur["deleted"] is False and cur["editedAtMs"] > 0, cur
    run(go())


# ---- 10. typing ----------------------------------------------------------------------

def test_typing(chat):
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            a2 = await cs.connect(alice)
            b = await cs.connect(bob)
            chat_id = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            await a.send(chat_id, "hi")

            r = await a.call("setTyping", chatId=chat_id, state="TYPING_STATE_STARTED")
            assert r == {}, r
            ev = await b.wait_event("typing", chatId=chat_id)
            assert ev == {"chatId": chat_id, "userId": alice, "state": "TYPING_STATE_STARTED"}
            # "(not to your own other connections)"
            await a2.ping()
            await quiet()
            assert [e for k, e in a2.log if k == "typing"] == []
            await a.call("setTyping", chatId=chat_id, state="TYPING_STATE_STOPPED")
            ev = await b.wait_event("typing", chatId=chat_id)
            assert ev["state"] == "TYPING_STATE_STOPPED", ev

            # A burst: each reply is an Ack or RATE_LIMITED (with retryAfterMs); a
            # refused one is not fanned out; the connection stays open.
            futs = [await a.submit("setTyping", chatId=chat_id, state="TYPING_STATE_STARTED")
                    for _ in range(60)]
            answers = await replies(futs)
            acked = [r for r in answers if "setTyping" in r]
            limited = [r["error"] for r in answers if "error" in r]
            assert all(e["code"] == "ERROR_CODE_RATE_LIMITED" and e["retryAfterMs"] > 0
                       for e in limited), limited
            await a.ping()
            await b.ping()
            await quiet()
            got = [e for k, e in b.events if k == "typing"]
            assert all(e["userId"] == alice and e["chatId"] == chat_id for e in got), got
            # Limited either way: refused with RATE_LIMITED or acked and dropped.
            assert len(got) <= len(acked) and len(got) < 60, (len(got), len(acked))
            print(f"typing burst of 60: {len(acked)} acked, {len(limited)} RATE_LIMITED, "
                  f"{len(got)} delivered")

            # Not stored: the log still holds the one message.
            page = await b.call("getHistory", chatId=chat_id)
            assert page["lastSeq"] == 1 and len(page["entries"]) == 1, page
            r = await b.call("sync", chats=[{"chatId": chat_id, "lastSeenSeq": 1}])
            assert r["chats"][0]["entries"] == [], r
    run(go())


# ---- 11. presence --------------------------------------------------------------------

def test_presence(chat):
    alice, bob, stranger = unique("alice", "bob", "stranger")

    async def go():
        async with Clients(chat) as cs:
            a = await cs.connect(alice)
            await a.call("createDirectChat", peerId=bob)
            # "one for the peer of a direct chat created later": his current state.
            # He never connected: no lastSeenMs ("absent for a user the server
            # has not seen connected").
            ev = await a.wait_event("presence", userId=bob)
            assert ev["state"] == "PRESENCE_STATE_OFFLINE" and ev["lastSeenMs"] == 0, ev
            s = await cs.connect(stranger)  # shares no chat with alice

            b1 = await cs.connect(bob)
            # Right after hello, one presence event per direct-chat peer.
            ev = await b1.wait_event("presence", userId=alice)
            assert ev["state"] == "PRESENCE_STATE_ONLINE", ev
            ev = await a.wait_event("presence", userId=bob)
            assert ev["state"] == "PRESENCE_STATE_ONLINE", ev
            b2 = await cs.connect(bob, "proto")
            ev = await b2.wait_event("presence", userId=alice)
            assert ev["state"] == "PRESENCE_STATE_ONLINE", ev

            # One of two connections closes: bob is still online.
            await b1.close()
            await b2.ping()
            await quiet()
            offline = [e for k, e in a.events if k == "presence" and
                       e["userId"] == bob and e["state"] == "PRESENCE_STATE_OFFLINE"]
            assert offline == [], "bob still has a connection"

            # His last connection closes: OFFLINE with lastSeenMs.
            before = ms_now()
            await b2.close()
            ev = await a.wait_event("presence", userId=bob, state="PRESENCE_STATE_OFFLINE")
            assert before - 5000 <= ev["lastSeenMs"] <= ms_now() + 5000, (before, ev)

            # A new connection of alice hears bob's current state right after hello.
            a2 = await cs.connect(alice)
            ev = await a2.wait_event("presence", userId=bob)
            assert ev["state"] == "PRESENCE_STATE_OFFLINE" and ev["lastSeenMs"] > 0, ev

            await s.close()
            await a.ping()
            await quiet()
            assert [e for k, e in a.log if k == "presence" and e["userId"] == stranger] == [], \
                "presence goes to related users (by default: direct chat peers)"
    run(go())


# ---- 12. message rate limit ----------------------------------------------------------

def test_rate_limits(own_servers):
    s = own_servers.start("--message-rate", "5", "--message-burst", "5")
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(s) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            chat_id = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            t0 = time.monotonic()
            futs = [await a.submit("sendMessage", chatId=chat_id, clientMsgId=f"r-{n}",
                                   text=f"{n}") for n in range(20)]
            answers = await replies(futs)
            elapsed = time.monotonic() - t0
            acked = [r["sendMessage"] for r in answers if "sendMessage" in r]
            limited = [(n, r["error"]) for n, r in enumerate(answers) if "error" in r]
            assert all(e["code"] == "ERROR_CODE_RATE_LIMITED" for _, e in limited), limited
            assert all(0 < e["retryAfterMs"] <= 60000 for _, e in limited), limited
            assert limited, "20 sends against a burst of 5 must hit the limit"
            assert 5 <= len(acked) <= 5 + 5 * elapsed + 1, (len(acked), elapsed)
            assert sorted(x["seq"] for x in acked) == list(range(1, len(acked) + 1))
            await a.ping()

            # Per user: bob is not limited by alice's sends.
            assert (await b.send(chat_id, "my own budget"))["duplicate"] is False

            # After retryAfterMs, the refused send (same clientMsgId) goes through.
            n, err = limited[-1]
            await asyncio.sleep(err["retryAfterMs"] / 1000 + 0.05)
            r = await a.send(chat_id, f"{n}", cmid=f"r-{n}")
            assert r["duplicate"] is False, r

            log = await read_log(a, chat_id)
            assert len(messages_of(log)) == len(acked) + 2, "refused sends are not stored"

            # "sendMessage + editMessage per user": edits draw on the same budget.
            futs = [await a.submit("editMessage", chatId=chat_id, seq=1, text=f"edit {n}")
                    for n in range(10)]
            codes = [r["error"]["code"] if "error" in r else "ok" for r in await replies(futs)]
            assert set(codes) <= {"ok", "ERROR_CODE_RATE_LIMITED"}, codes
            assert codes.count("ok") <= 6 and "ERROR_CODE_RATE_LIMITED" in codes, codes
    run(go())

    # The defaults: 20/s with bursts of 40.
    d = own_servers.start()
    carol, dave = unique("carol", "dave")

    async def defaults():
        async with Clients(d) as cs:
            c = await cs.connect(carol)
            chat_id = (await c.call("createDirectChat", peerId=dave))["chat"]["chatId"]
            t0 = time.monotonic()
            futs = [await c.submit("sendMessage", chatId=chat_id, clientMsgId=f"x-{n}",
                                   text="x") for n in range(100)]
            answers = await replies(futs)
            elapsed = time.monotonic() - t0
            ok = sum("sendMessage" in r for r in answers)
            assert all(r["error"]["code"] == "ERROR_CODE_RATE_LIMITED"
                       for r in answers if "error" in r), answers
            assert 40 <= ok <= 40 + 20 * elapsed + 1 and ok < 100, (ok, elapsed)
    run(defaults())


def test_chat_change_budget_and_group_cap_flags(own_servers):
    # --chat-change-rate 1: bursts of 10 chat changes; --max-groups-per-user 2.
    s = own_servers.start("--chat-change-rate", "1", "--max-groups-per-user", "2")
    alice, bob = unique("alice", "bob")

    async def go():
        async with Clients(s) as cs:
            a = await cs.connect(alice)
            futs = [await a.submit("createDirectChat", peerId=f"{bob}-{n}") for n in range(14)]
            answers = await replies(futs)
            ok = [r for r in answers if "createDirectChat" in r]
            limited = [r["error"] for r in answers if "error" in r]
            assert 10 <= len(ok) <= 11 and limited, answers
            assert all(e["code"] == "ERROR_CODE_RATE_LIMITED" and int(e["retryAfterMs"]) > 0
                       for e in limited), limited
            await asyncio.sleep(int(limited[-1]["retryAfterMs"]) / 1000 + 2.1)
            # Two groups, then the cap: TOO_LARGE, however long one waits.
            for n in range(2):
                await a.call("createGroup", title=f"g{n}", memberIds=[bob])
            futs = [await a.submit("createGroup", title="g3", memberIds=[bob])]
            (r,) = await replies(futs)
            assert r["error"]["code"] == "ERROR_CODE_TOO_LARGE", r
    run(go())


# ---- 13. restart ---------------------------------------------------------------------

def test_restart_keeps_everything(own_servers):
    s = own_servers.start()
    alice, bob = unique("alice", "bob")

    async def before():
        async with Clients(s) as cs:
            a = await cs.connect(alice)
            await cs.connect(bob)
            direct = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            group = await group_with(a, [bob], title="Durable")
            for n in range(5):
                await a.send(direct, f"d{n}", cmid=f"d-{n}")
                await a.send(group, f"g{n}", cmid=f"g-{n}")
            await a.call("editMessage", chatId=group, seq=2, text="g0 edited")
            await a.call("deleteMessage", chatId=group, seq=3)
            await a.call("markRead", chatId=direct, seq=5)
            return direct, group, await read_log(a, direct), await read_log(a, group)
    direct, group, direct_log, group_log = run(before())
    assert [e["seq"] for _, e in group_log] == list(range(1, 9))

    s.proc.terminate()  # SIGTERM: drain and exit
    assert s.proc.wait(timeout=15 * SCALE) == 0, s.output()
    s2 = own_servers.restart(s)

    async def after():
        async with Clients(s2) as cs:
            a = await cs.connect(alice)
            b = await cs.connect(bob)
            assert await read_log(a, direct) == direct_log
            assert await read_log(b, group) == group_log
            chats = {c["chatId"]: c for c in (await a.call("listChats"))["chats"]}
            assert set(chats) == {direct, group}, chats
            assert chats[direct]["readSeq"] == 5 and chats[group]["title"] == "Durable"
            assert (await a.call("createDirectChat", peerId=bob))["created"] is False
            # The next entry gets the next seq; nothing is reused.
            assert (await a.send(direct, "after restart"))["seq"] == 6
            assert (await b.send(group, "after restart"))["seq"] == 9
            # Idempotency survives too.
            r = await a.send(direct, "d2", cmid="d-2")
            assert r["duplicate"] is True and r["seq"] == 3, r
    run(after())


# ---- 14. kill -9 under load ----------------------------------------------------------

def test_kill9_under_load_loses_no_acked_message(own_servers):
    s = own_servers.start(*NO_RATE_LIMIT)
    users = unique(*[f"u{n}" for n in range(10)])
    WINDOW = 16  # sends in flight per client
    # Sends per second per client: under the gateway's 200 frames/s per connection
    # (close 4008 beyond; docs/protocol.md, Close codes).
    RATE = 100

    async def setup():
        async with Clients(s) as cs:
            c = await cs.connect(users[0])
            directs = [(await c.call("createDirectChat", peerId=users[1]))["chat"]["chatId"]]
            for n in (2, 4):
                c = await cs.connect(users[n])
                r = await c.call("createDirectChat", peerId=users[n + 1])
                directs.append(r["chat"]["chatId"])
            g = await group_with(c, users[6:])
            return [d for d in directs for _ in (0, 1)] + [g] * 4
    chat_of = run(setup())  # the chat each user sends to: 3 direct chats and a group

    sent = {}    # (user, cmid) -> (chat, text)
    acked = {}   # (user, cmid) -> (chat, seq)

    async def load():
        clients = [await ChatClient.connect(s.url, u, "proto" if n % 2 else "json")
                   for n, u in enumerate(users)]
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        async def sender(c, chat_id):
            inflight = set()
            n = 0
            t0 = loop.time()
            try:
                while not stop.is_set():
                    while len(inflight) < WINDOW and n < RATE * (loop.time() - t0) + 1:
                        cmid, text = f"{c.user}-{n}", f"load {n}"
                        n += 1
                        sent[(c.user, cmid)] = (chat_id, text)
                        fut = await c.submit("sendMessage", chatId=chat_id,
                                             clientMsgId=cmid, text=text)
                        fut.key = (c.user, cmid)
                        inflight.add(fut)
                    if not inflight:
                        await asyncio.sleep(0.005)
                        continue
                    done, inflight = await asyncio.wait(
                        inflight, timeout=0.01, return_when=asyncio.FIRST_COMPLETED)
                    for f in done:
                        # A failed send (connection gone, or UNAVAILABLE under load)
                        # stays unacked: it is resent after the restart.
                        if not f.exception() and "sendMessage" in f.result():
                            acked[f.key] = (chat_id, f.result()["sendMessage"]["seq"])
            except (ConnectionError, websockets.ConnectionClosed):
                pass
            if not stop.is_set():
                raise AssertionError(f"{c.user}: connection closed during the load "
                                     f"({c.ws.close_code} {c.ws.close_reason})")

        tasks = [asyncio.create_task(sender(c, chat_of[i])) for i, c in enumerate(clients)]
        await asyncio.sleep(2.5)
        for t in tasks:
            if t.done():
                t.result()  # a sender that failed early says why
        # A last burst from every client, then the kill: however slow this client is
        # next to the server, the kill lands while the server still has sends to
        # read, store or answer.
        for i, c in enumerate(clients):
            for k in range(16):
                cmid, text = f"{c.user}-burst-{k}", f"burst {k}"
                sent[(c.user, cmid)] = (chat_of[i], text)
                await c.submit("sendMessage", chatId=chat_of[i], clientMsgId=cmid, text=text)
        s.kill9()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT)
        for c in clients:
            await c.close()
            assert c.ws.close_code == 1006, "the connection died with the server"
    run(load())
    assert len(acked) >= 500, f"only {len(acked)} sends were acked before the kill"
    assert len(sent) > len(acked), "the kill came after every send was acked"

    s2 = own_servers.restart(s)

    async def verify():
        async with Clients(s2) as cs:
            reader = {u: await cs.connect(u) for u in users}
            logs = {}
            for chat_id in set(chat_of):
                member = users[chat_of.index(chat_id)]
                log = await read_log(reader[member], chat_id)
                seqs = [e["seq"] for _, e in log]
                assert seqs == list(range(1, len(seqs) + 1)), \
                    f"{chat_id}: seqs must be gap-free 1..last without duplicates"
                logs[chat_id] = {e["seq"]: e for k, e in log if k == "message"}
            stored = {}
            for chat_id, msgs in logs.items():
                for seq, m in msgs.items():
                    key = (m["senderId"], m["clientMsgId"])
                    assert key not in stored, f"{key} stored twice"
                    stored[key] = (chat_id, seq)
            lost = [(k, v) for k, v in acked.items() if stored.get(k) != v]
            assert not lost, f"{len(lost)} acked messages lost or moved, e.g. {lost[:5]}"
            for key, (chat_id, seq) in acked.items():
                assert logs[chat_id][seq]["text"] == sent[key][1]

            # Resending what was never acked: a duplicate at the stored seq, or stored now.
            unacked = [k for k in sent if k not in acked]
            for user, cmid in unacked:
                chat_id, text = sent[(user, cmid)]
                r = await reader[user].send(chat_id, text, cmid=cmid)
                if (user, cmid) in stored:
                    assert r["duplicate"] is True and (chat_id, r["seq"]) == stored[(user, cmid)], r
                else:
                    assert r["duplicate"] is False, r
            for chat_id in set(chat_of):
                member = users[chat_of.index(chat_id)]
                log = await read_log(reader[member], chat_id)
                assert [e["seq"] for _, e in log] == list(range(1, len(log) + 1))
                keys = [(e["senderId"], e["clientMsgId"]) for k, e in log if k == "message"]
                assert len(keys) == len(set(keys)) == \
                    sum(1 for v in sent.values() if v[0] == chat_id), chat_id
            print(f"kill -9: {len(sent)} sent, {len(acked)} acked, {len(unacked)} in flight; "
                  f"{sum(1 for k in unacked if k in stored)} of those were stored")
    run(verify())


# ---- 15. the HTTP API ------------------------------------------------------------------

def test_http_api(chat, own_servers):
    alice, bob, mallory = unique("alice", "bob", "mallory")

    # POST /v1/login, only with --dev-login.
    r = chat.http("POST", "/v1/login", {"user": alice})
    assert r.status == 200, r
    login = r.body
    assert login["userId"] == alice and login["token"], login
    assert int(login["expiresAtMs"]) > ms_now(), login
    for bad in ({"user": "has space"}, {"user": ""}, {"user": "a:b"}, {"user": "x" * 65},
                {}, "not json"):
        assert chat.http("POST", "/v1/login", bad).status == 400, bad
    plain = own_servers.start()
    assert plain.http("POST", "/v1/login", {"user": alice}).status == 404

    async def setup():
        async with Clients(chat) as cs:
            a = await cs.connect(alice, tok=login["token"])  # the login's token works
            b = await cs.connect(bob, in_query=True)
            direct = (await a.call("createDirectChat", peerId=bob))["chat"]["chatId"]
            for n in range(7):
                await a.send(direct, f"m{n}")
            await b.call("markRead", chatId=direct, seq=2)
            group = await group_with(a, [mallory])
            return direct, group
    direct, group = run(setup())
    tb, tm = token(bob), token(mallory)

    # GET /v1/chats: a ChatList, as listChats.
    r = chat.http("GET", "/v1/chats", tok=tb)
    assert r.status == 200 and "application/json" in r.headers["Content-Type"], r
    (c,) = json_decode("ChatList", r.body)["chats"]
    assert c["chatId"] == direct and c["lastSeq"] == 7, c
    assert c["readSeq"] == 2 and c["unreadCount"] == 5, c
    r = chat.http("GET", "/v1/chats?limit=1", tok=token(alice))
    page = json_decode("ChatList", r.body)
    assert [x["chatId"] for x in page["chats"]] == [direct] and page["hasMore"], page
    r = chat.http("GET", "/v1/chats?limit=1&cursor=" + page["nextCursor"], tok=token(alice))
    assert [x["chatId"] for x in json_decode("ChatList", r.body)["chats"]] == [group], r
    (c,) = json_decode("ChatList", chat.http("GET", "/v1/chats", tok=tm).body)["chats"]
    assert c["chatId"] == group, c

    # GET /v1/chats/{id}/messages: a HistoryPage, as getHistory.
    path = f"/v1/chats/{direct}/messages"

    def seqs(r):
        assert r.status == 200, r
        return [one_of(e)[1]["seq"] for e in json_decode("HistoryPage", r.body)["entries"]]
    r = chat.http("GET", path + "?limit=3", tok=tb)
    page = json_decode("HistoryPage", r.body)
    assert seqs(r) == [5, 6, 7] and page["hasMore"] and page["lastSeq"] == 7, page
    assert seqs(chat.http("GET", f"{path}?before={page['nextSeq']}&limit=3", tok=tb)) == [2, 3, 4]
    assert seqs(chat.http("GET", f"{path}?after=1&limit=2", tok=tb)) == [2, 3]
    assert seqs(chat.http("GET", path, tok=tb)) == list(range(1, 8))
    r = chat.http("GET", f"{path}?after=2&before=5", tok=tb)
    page = json_decode("HistoryPage", r.body)
    assert [one_of(e)[1]["text"] for e in page["entries"]] == ["m2", "m3"], page
    assert not page["hasMore"], page

    # The refusals: status, and the error body with its code.
    for tok in (None, "abc.def.ghi", token(bob, ttl=-60), token(bob, secret="y" * 40)):
        for target in ("/v1/chats", path):
            r = chat.http("GET", target, tok=tok)
            assert r.status == 401 and r.error_code() == "UNAUTHORIZED", (tok, target, r)
            assert r.headers["WWW-Authenticate"].startswith("Bearer"), r
    r = chat.http("GET", path, tok=tm)
    assert r.status == 403 and r.error_code() == "NOT_MEMBER", r
    r = chat.http("GET", "/v1/chats/g:no-such-chat/messages", tok=tb)
    assert r.status == 404 and r.error_code() == "NOT_FOUND", r
    for q in ("?limit=abc", "?before=-1", "?after=x", "?after=5&before=5", "?after=6&before=2",
              "?limit=1e99"):
        r = chat.http("GET", path + q, tok=tb)
        assert r.status == 400 and r.error_code() == "BAD_REQUEST", (q, r)
    r = chat.http("GET", "/v1/chats/bad%20id/messages", tok=tb)
    assert r.status == 400 and r.error_code() == "BAD_REQUEST", r
    r = chat.http("GET", "/v1/chats?cursor=garbage", tok=tb)
    assert r.status == 400 and r.error_code() == "BAD_REQUEST", r
    assert chat.http("DELETE", path, tok=tb).status == 405
    assert chat.http("POST", "/v1/chats", {"x": 1}, tok=tb).status == 405


# ---- 16. slow consumers --------------------------------------------------------------
# docs/protocol.md, "Reading what the server sends": a client that reads is never
# closed 4009 for traffic inside the documented limits; one that stops reading is,
# once its queue has not shrunk for the grace period.

FIELD_LIMIT = 16 * 1024  # one string field (docs/protocol.md, Limits)
MESSAGE_BURST = 40       # sendMessage per user, the default burst


def gateway_metrics(server):
    """The gateway's series from GET /metrics, as {"name{labels}": value}."""
    r = server.http("GET", "/metrics")
    assert r.status == 200, r
    out = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


async def burst(client, chat_id, n, tag):
    """`n` sendMessage of FIELD_LIMIT bytes, pipelined; their acks' seqs."""
    futs = [await client.submit("sendMessage", chatId=chat_id, clientMsgId=f"{tag}-{i}",
                                text=chr(ord("a") + i % 26) * FIELD_LIMIT)
            for i in range(n)]
    return [result_of("sendMessage", r)["seq"] for r in await replies(futs, timeout=60)]


async def wait_for_messages(client, chat_id, seqs, timeout):
    """Waits until `client` has seen a message event for every seq in `seqs`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        seen = {e["seq"] for k, e in client.log if k == "message" and e["chatId"] == chat_id}
        missing = set(seqs) - seen
        if not missing:
            return
        assert not client.closed, \
            f"{client.user}: closed ({client.ws.close_code}) with {len(missing)} missing"
        assert asyncio.get_running_loop().time() < deadline, \
            f"{client.user}: {len(missing)} messages missing after {timeout}s"
        await asyncio.sleep(0.05)


def test_group_burst_inside_the_limits_closes_nobody(own_servers):
    # Issue 16, finding 2: 8 members each send one full burst (40 x 16 KiB) into a
    # group while a 9th only reads. Up to 5 MiB can be queued for a member at once
    # (2 MiB measured on loopback), past the 1 MiB watermark, faster than any
    # client reads; all of them read, so nobody is closed. (With the cap at the
    # watermark, --send-queue-max-bytes 1048576, as before the fix: 4009.)
    s = own_servers.start()  # the documented defaults
    users = unique(*[f"sender{i}" for i in range(8)], "reader")
    senders, reader = users[:8], users[8]

    async def go():
        async with Clients(s) as cs:
            cl = [await cs.connect(u) for u in users]
            chat_id = await group_with(cl[0], users[1:])
            for c in cl[1:]:
                await c.wait_event("membershipChanged", chatId=chat_id)
            t0 = time.monotonic()
            acked = await asyncio.gather(*(burst(c, chat_id, MESSAGE_BURST, u)
                                           for c, u in zip(cl[:8], senders)))
            every = sorted(seq for seqs in acked for seq in seqs)
            assert len(every) == 8 * MESSAGE_BURST
            for c, own in zip(cl, acked + [[]]):
                # A sender's own messages come back as replies, the rest as events.
                await wait_for_messages(c, chat_id, set(every) - set(own), 60 * SCALE)
            elapsed = time.monotonic() - t0
            for c in cl:
                assert not c.closed, f"{c.user}: closed {c.ws.close_code}"
                await c.ping()
            m = gateway_metrics(s)
            peak = m["cc_gateway_send_queue_peak_bytes"]
            print(f"\n{len(every)} messages of {FIELD_LIMIT} bytes to 9 members in "
                  f"{elapsed:.2f}s; largest send queue {peak / 2**20:.2f} MiB")
            assert m['cc_gateway_closes_total{reason="slow_consumer"}'] == 0, m
    run(go())


def test_member_who_never_reads_is_closed_after_the_grace_period(own_servers):
    # A member stops reading its socket: its queue passes the watermark and
    # does not shrink, so after the grace period it is closed 4009 (not before:
    # the hard cap is far away), while the others, who read, get everything and
    # carry on; a reconnect and the history bring back what it missed.
    grace_ms = 3000  # the senders, behind too while they read, must drain within it
    s = own_servers.start("--send-queue-bytes", "262144", "--send-queue-grace-ms",
                          str(grace_ms), "--send-queue-max-bytes", str(64 << 20))
    users = unique(*[f"s{i}" for i in range(8)], "lazy")
    senders, lazy_user = users[:8], users[8]

    async def go():
        async with Clients(s) as cs:
            cl = [await cs.connect(u) for u in senders]
            lazy = await cs.connect(lazy_user)
            chat_id = await group_with(cl[0], users[1:])
            for c in cl[1:] + [lazy]:
                await c.wait_event("membershipChanged", chatId=chat_id)
            # Stop reading the socket, with a small receive buffer (the kernel's
            # buffers fill, then the server's queue grows; a tinier one makes
            # reading again crawl on zero-window probes).
            sock = lazy.ws.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            lazy.ws.transport.pause_reading()
            t0 = time.monotonic()
            acked = await asyncio.gather(*(burst(c, chat_id, MESSAGE_BURST, u)
                                           for c, u in zip(cl, senders)))
            every = sorted(seq for seqs in acked for seq in seqs)
            for c, own in zip(cl, acked):
                await wait_for_messages(c, chat_id, set(every) - set(own), 60 * SCALE)
            deadline = time.monotonic() + (grace_ms / 1000 + TIMEOUT) * SCALE
            rules = {}
            while time.monotonic() < deadline:
                m = gateway_metrics(s)
                rules = {r: m[f'cc_gateway_slow_consumer_closes_total{{rule="{r}"}}']
                         for r in ("stalled", "max_bytes", "budget")}
                if any(rules.values()):
                    break
                await asyncio.sleep(0.05)
            cut_after = time.monotonic() - t0
            assert rules == {"stalled": 1, "max_bytes": 0, "budget": 0}, rules
            assert cut_after >= grace_ms / 1000, cut_after
            # It reads again: what was being written, then the close.
            lazy.ws.transport.resume_reading()
            deadline = time.monotonic() + TIMEOUT
            while not lazy.closed and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert lazy.closed and lazy.ws.close_code == 4009, lazy.ws.close_code
            # The others carry on.
            last = (await cl[1].send(chat_id, "still here"))["seq"]
            for c in cl:
                assert not c.closed, f"{c.user}: closed {c.ws.close_code}"
            for c in cl[:1] + cl[2:]:
                await c.wait_event("message", chatId=chat_id, seq=last)
            # Nothing was lost: after a reconnect the history has it all.
            again = await cs.connect(lazy_user)
            log = await read_log(again, chat_id)
            assert {e["seq"] for e in messages_of(log)} == set(every) | {last}
            peak = gateway_metrics(s)["cc_gateway_send_queue_peak_bytes"]
            print(f"\nthe non-reader was closed 4009 {cut_after:.2f}s after the burst "
                  f"began (grace {grace_ms} ms); largest send queue "
                  f"{peak / 2**20:.2f} MiB")
    run(go())
