"""The examples of docs/bindings-python.md and of the modules' docstrings run
as written."""

import asyncio
import doctest
import json
import os
import re
import signal
import subprocess
import sys

import pytest

import chatcore
from chatcore import jwt, protocol, ratelimit, server

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs",
                   "bindings-python.md")


@pytest.mark.parametrize("module", [chatcore, jwt, ratelimit, protocol, server])
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_page_examples():
    with open(DOC, encoding="utf-8") as f:
        blocks = re.findall(r"```python\n(.*?)```", f.read(), re.S)
    assert len(blocks) >= 5
    # The first block uses names a program would have: give them values.
    secret = b"0123456789abcdef0123456789abcdef"
    scope = {
        "secret": secret,
        "token": jwt.sign_hmac("HS256", secret, {"sub": "alice", "exp": 4102444800}),
        "data": protocol.encode({"requestId": 1, "ping": {}}, protocol.FrameKind.CLIENT,
                                protocol.Encoding.PROTOBUF),
    }
    for block in blocks:  # one session, as a reader would type them
        if "server.wait()" in block:
            continue  # a server that runs until Ctrl-C: test_ten_line_server
        exec(compile(block, DOC, "exec"), scope)
    assert scope["user"] == "alice"
    assert scope["claims"].sub == "alice"
    assert scope["reply"] == {"reply": {"requestId": "1", "ping": {}}}


def test_ten_line_server(tmp_path):
    """The page's chat server, run as a script: a websocket client is
    refused without a known token, its spam refused with the reason, its
    "darn" rewritten; after_store prints every stored message; Ctrl-C stops
    it."""
    websockets = pytest.importorskip("websockets")
    with open(DOC, encoding="utf-8") as f:
        block = next(b for b in re.findall(r"```python\n(.*?)```", f.read(), re.S)
                     if "server.wait()" in b)
    # Port 0 rather than 8080: other programs on the machine may hold 8080.
    assert '"127.0.0.1:8080"' in block
    script = tmp_path / "chat.py"
    script.write_text(block.replace('"127.0.0.1:8080"', '"127.0.0.1:0"'))
    pkg_parent = os.path.dirname(os.path.dirname(chatcore.__file__))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [pkg_parent] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.Popen([sys.executable, "-u", str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("chat at ws://127.0.0.1:"), line + proc.stderr.read()
        url = line.split()[-1]

        async def talk():
            with pytest.raises(websockets.InvalidStatusCode):
                await websockets.connect(url + "?access_token=unknown")
            ws = await websockets.connect(url + "?access_token=secret-alice")
            frames = []

            async def call(rid, **command):
                await ws.send(json.dumps({"requestId": rid, **command}))
                while True:
                    f = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    if f.get("reply", {}).get("requestId") == rid:
                        return f["reply"]
                    frames.append(f)

            chat = (await call("1", createDirectChat={"peerId": "bob"}))[
                "createDirectChat"]["chat"]["chatId"]
            spam = await call("2", sendMessage={"chatId": chat, "clientMsgId": "a",
                                                "text": "cheap spam"})
            ok = await call("3", sendMessage={"chatId": chat, "clientMsgId": "b",
                                              "text": "darn it"})
            await ws.close()
            return spam, ok, frames

        spam, ok, frames = asyncio.run(talk())
        assert spam["error"] == {"code": "ERROR_CODE_FORBIDDEN", "message": "no spam here"}
        assert ok["sendMessage"]["seq"] == "1"
        assert [f["event"]["message"]["text"] for f in frames
                if "message" in f.get("event", {})] == ["**** it"]
        line = proc.stdout.readline()  # after_store=print
        assert "StoredEntry(kind='message'" in line and "seq=1" in line, line
        assert "text='**** it'" in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    # Ctrl-C: KeyboardInterrupt out of wait(), the with block stops the server,
    # and Python ends by SIGINT (3.8+ re-raises it: status -2, not a crash).
    assert proc.returncode == -signal.SIGINT and "KeyboardInterrupt" in err, err
    assert "Error" not in err.replace("KeyboardInterrupt", "")
    assert (tmp_path / "chat.db").exists()
