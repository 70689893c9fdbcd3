"""The examples of docs/bindings-python.md and of the modules' docstrings run
as written."""

import doctest
import os
import re

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
        exec(compile(block, DOC, "exec"), scope)
    assert scope["user"] == "alice"
    assert scope["claims"].sub == "alice"
    assert scope["reply"] == {"reply": {"requestId": "1", "ping": {}}}
