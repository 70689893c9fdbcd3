"""examples/embed-uv: chat on the loop of an existing libuv program. The
program's own service keeps answering while chat sessions run on the same
loop; tokens go through its own check; SIGINT closes the sessions with 1001,
the program's handles, and exits 0."""

import asyncio
import json
import os
import signal
import socket
import subprocess

import pytest

websockets = pytest.importorskip("websockets")
SCALE = 1 if os.environ.get("CHATCORE_SANITIZE", "none") in ("", "none") else 5
TIMEOUT = 5.0 * SCALE


@pytest.fixture
def program():
    proc = subprocess.Popen([os.environ["EMBED_UV"], "127.0.0.1:0", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        app = proc.stdout.readline().split()
        chat = proc.stdout.readline().split()
        assert app[:2] == ["app", "on"] and chat[:2] == ["chat", "on"], proc.stderr.read()
        yield proc, int(app[2].rsplit(":", 1)[1]), chat[2]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as s:
        return s.recv(100)


async def recv(ws):
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def until(ws, key):
    while True:
        frame = await recv(ws)
        if key in frame.get("event", {}) or key in frame.get("reply", {}):
            return frame


def test_chat_beside_the_programs_own_service(program):
    proc, app_port, url = program
    assert greeting(app_port) == b"hello from the existing server\n"

    async def go():
        with pytest.raises(websockets.InvalidStatusCode) as refused:
            await websockets.connect(url + "?access_token=mallory", open_timeout=TIMEOUT)
        assert refused.value.status_code == 401
        alice = await websockets.connect(url + "?access_token=alice-secret")
        bob = await websockets.connect(url, extra_headers={"Authorization":
                                                           "Bearer bob-secret"})
        assert (await until(alice, "hello"))["event"]["hello"]["userId"] == "alice"
        assert (await until(bob, "hello"))["event"]["hello"]["userId"] == "bob"
        await alice.send(json.dumps({"requestId": "1",
                                     "createDirectChat": {"peerId": "bob"}}))
        await until(alice, "createDirectChat")
        await alice.send(json.dumps({"requestId": "2", "sendMessage": {
            "chatId": "d:alice:bob", "clientMsgId": "m1", "text": "hi bob"}}))
        assert (await until(alice, "sendMessage"))["reply"]["sendMessage"]["seq"] == "1"
        msg = (await until(bob, "message"))["event"]["message"]
        assert (msg["senderId"], msg["text"]) == ("alice", "hi bob")
        # The program's own service still answers, on the same loop.
        assert await asyncio.get_running_loop().run_in_executor(
            None, greeting, app_port) == b"hello from the existing server\n"
        proc.send_signal(signal.SIGINT)
        for ws in (alice, bob):
            await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
            assert ws.close_code == 1001

    asyncio.run(go())
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, err
    assert out.startswith("stopped after "), out
    with pytest.raises(OSError):  # its own service closed too
        greeting(app_port)
