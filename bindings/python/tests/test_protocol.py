"""The protocol codec through the bindings: client and server frames in both
encodings, to and from dicts; validation errors with their CC_ERR_* names;
limits; subprotocols; identifiers."""

import base64
import json

import pytest

import chatcore
from chatcore.protocol import (
    Encoding,
    FrameKind,
    Limits,
    decode,
    direct_chat_id,
    encode,
    error_code_for,
    error_code_name,
    is_valid_chat_id,
    is_valid_client_msg_id,
    is_valid_user_id,
    parse_direct_chat_id,
    select_subprotocol,
    transcode,
    validate,
)

CLIENT_FRAMES = [
    {"requestId": "1", "sendMessage": {"chatId": "d:alice:bob",
                                       "clientMsgId": "5f0c2a8e", "text": "Hi Bob! ✓"}},
    {"requestId": "13", "ping": {"clientTimeMs": "1700000000000"}},
    {"requestId": "2", "createGroup": {"title": "Release crew",
                                       "memberIds": ["bob", "carol"]}},
]
SERVER_FRAMES = [
    {"reply": {"requestId": "1", "sendMessage": {
        "chatId": "d:alice:bob", "seq": "42", "messageId": "d:alice:bob/42",
        "sentAtMs": "1700000000123"}}},
    {"reply": {"requestId": "16", "error": {
        "code": "ERROR_CODE_BAD_REQUEST", "message": "sendMessage.chatId: expected a string"}}},
    {"event": {"message": {
        "chatId": "g:01HF7Z3KQ", "seq": "23", "senderId": "bob", "clientMsgId": "b-8",
        "payload": "eyJpbWFnZSI6Imh0dHBzOi8vZXhhbXBsZS5jb20vYS5wbmcifQ==",
        "sentAtMs": "1700001000000", "messageId": "g:01HF7Z3KQ/23", "updatedSeq": "23"}}},
]
CASES = ([(FrameKind.CLIENT, f) for f in CLIENT_FRAMES]
         + [(FrameKind.SERVER, f) for f in SERVER_FRAMES])


@pytest.mark.parametrize("kind,frame", CASES)
@pytest.mark.parametrize("encoding", list(Encoding))
def test_round_trip(kind, frame, encoding):
    wire = encode(frame, kind, encoding)
    assert isinstance(wire, bytes)
    assert decode(wire, kind, encoding) == frame
    validate(wire, kind, encoding)
    if encoding is Encoding.JSON:
        assert json.loads(wire.decode("utf-8")) == frame
        assert decode(wire.decode("utf-8"), kind, encoding) == frame  # str in
    else:
        with pytest.raises(ValueError):  # binary protobuf, not JSON text
            json.loads(wire)


@pytest.mark.parametrize("kind,frame", CASES)
def test_transcode_between_encodings(kind, frame):
    pb = encode(frame, kind, Encoding.PROTOBUF)
    js = transcode(pb, kind, Encoding.PROTOBUF, Encoding.JSON)
    assert json.loads(js) == frame
    assert transcode(js, kind, Encoding.JSON, Encoding.PROTOBUF) == pb
    assert transcode(memoryview(pb), kind, Encoding.PROTOBUF, Encoding.PROTOBUF) == pb


def test_python_values_for_int64_and_bytes():
    frame = {"requestId": 7, "sendMessage": {"chatId": "g:1", "clientMsgId": "m1",
                                             "payload": b"\x00\xffbin"}}
    back = decode(encode(frame, FrameKind.CLIENT, Encoding.PROTOBUF), FrameKind.CLIENT,
                  Encoding.PROTOBUF)
    assert back["requestId"] == "7"
    assert base64.b64decode(back["sendMessage"]["payload"]) == b"\x00\xffbin"
    with pytest.raises(TypeError):
        encode({"requestId": 1, "ping": {"clientTimeMs": {1, 2}}}, FrameKind.CLIENT,
               Encoding.JSON)
    with pytest.raises(TypeError):
        encode([("requestId", 1)], FrameKind.CLIENT, Encoding.JSON)


@pytest.mark.parametrize("data,encoding,name,cls", [
    (b'{"requestId": "1", "sendMessage": ', Encoding.JSON, "PROTO",
     chatcore.ProtocolError),
    (b'{"requestId": "1", "sendMessage": {"chatId": 5}}', Encoding.JSON, "PROTO_TYPE",
     chatcore.ProtocolError),
    (b'{"requestId": "1", "shout": {}}', Encoding.JSON, "PROTO_UNKNOWN",
     chatcore.ProtocolError),
    (b'{"requestId": "1"}', Encoding.JSON, "PROTO_UNKNOWN", chatcore.ProtocolError),
    (b'{"requestId": "1", "sendMessage": {"chatId": "bad chat", "clientMsgId": "m",'
     b' "text": "x"}}', Encoding.JSON, "INVALID", chatcore.ChatcoreError),
    (b"\xff\xff\xff", Encoding.PROTOBUF, "PROTO", chatcore.ProtocolError),
])
def test_bad_client_frames(data, encoding, name, cls):
    for call in (lambda: decode(data, FrameKind.CLIENT, encoding),
                 lambda: validate(data, FrameKind.CLIENT, encoding)):
        with pytest.raises(cls) as exc:
            call()
        assert exc.value.name == name
        assert str(exc.value).startswith(f"CC_ERR_{name}: ")
    with pytest.raises(cls) as exc:
        validate(data, FrameKind.CLIENT, encoding)
    if name == "PROTO_TYPE":
        assert exc.value.detail == "sendMessage.chatId: expected a string"


def test_limits():
    frame = {"requestId": "1", "sendMessage": {"chatId": "g:1", "clientMsgId": "m",
                                               "text": "x" * 300}}
    wire = encode(frame, FrameKind.CLIENT, Encoding.JSON)
    with Limits(FrameKind.CLIENT, max_field=100) as small:
        with pytest.raises(chatcore.ChatcoreError) as exc:
            decode(wire, FrameKind.CLIENT, Encoding.JSON, limits=small)
        assert exc.value.name == "TOO_LARGE"
        with pytest.raises(ValueError):  # limits of the other kind
            decode(wire, FrameKind.SERVER, Encoding.JSON, limits=small)
    with Limits(FrameKind.CLIENT, max_frame=64) as small:
        with pytest.raises(chatcore.ChatcoreError, match="CC_ERR_TOO_LARGE"):
            encode(frame, FrameKind.CLIENT, Encoding.PROTOBUF, limits=small)
    unknown = b'{"requestId": "1", "ping": {}, "futureField": 1}'
    with pytest.raises(chatcore.ProtocolError, match="PROTO_UNKNOWN"):
        decode(unknown, FrameKind.CLIENT, Encoding.JSON)
    with Limits(FrameKind.CLIENT, allow_unknown=True) as lenient:
        assert decode(unknown, FrameKind.CLIENT, Encoding.JSON, limits=lenient) == {
            "requestId": "1", "ping": {}}
    for kwargs in ({"max_frame": 0}, {"max_depth": 0}, {"max_depth": 1 << 32}):
        with pytest.raises(chatcore.ChatcoreError) as exc:
            Limits(FrameKind.CLIENT, **kwargs)
        assert exc.value.name == "INVALID", kwargs
    with pytest.raises(ValueError):
        Limits(3)


def test_limits_use_after_close():
    limits = Limits(FrameKind.SERVER, max_depth=4)
    limits.close()
    with pytest.raises(chatcore.ClosedError):
        decode(b'{"reply": {"requestId": "1", "ping": {}}}', FrameKind.SERVER,
               Encoding.JSON, limits=limits)


def test_argument_types():
    with pytest.raises(TypeError):
        decode("text", FrameKind.CLIENT, Encoding.PROTOBUF)  # protobuf is bytes
    with pytest.raises(TypeError):
        decode(12, FrameKind.CLIENT, Encoding.JSON)
    with pytest.raises(ValueError):
        decode(b"{}", FrameKind.CLIENT, 7)
    with pytest.raises(TypeError):
        decode(b"{}", FrameKind.CLIENT, Encoding.JSON, limits="big")


def test_subprotocols():
    assert Encoding.JSON.subprotocol == "chatcore.v1.json"
    assert Encoding.PROTOBUF.subprotocol == "chatcore.v1.proto"
    assert Encoding.from_subprotocol("chatcore.v1.proto") is Encoding.PROTOBUF
    assert Encoding.from_subprotocol(b"chatcore.v1.json") is Encoding.JSON
    with pytest.raises(chatcore.ChatcoreError) as exc:
        Encoding.from_subprotocol("Chatcore.v1.json")
    assert exc.value.name == "UNSUPPORTED"
    assert select_subprotocol("mqtt, chatcore.v1.proto, chatcore.v1.json") == (
        Encoding.PROTOBUF, "chatcore.v1.proto")
    assert select_subprotocol(None) == (Encoding.JSON, None)
    assert select_subprotocol("") == (Encoding.JSON, None)
    with pytest.raises(chatcore.ChatcoreError) as exc:
        select_subprotocol("mqtt")
    assert exc.value.name == "UNSUPPORTED"


def test_identifiers():
    assert is_valid_user_id("alice") and not is_valid_user_id("a:b")
    assert not is_valid_user_id("") and not is_valid_user_id("x" * 65)
    assert is_valid_chat_id("g:01HF7Z3KQ") and not is_valid_chat_id("has space")
    assert is_valid_client_msg_id(b"5f0c2a8e-1b7d") and not is_valid_client_msg_id("é")
    assert direct_chat_id("bob", "alice") == "d:alice:bob"
    assert parse_direct_chat_id("d:alice:bob") == ("alice", "bob")
    for a, b in (("alice", "alice"), ("al ice", "bob")):
        with pytest.raises(chatcore.ChatcoreError) as exc:
            direct_chat_id(a, b)
        assert exc.value.name == "INVALID"
    with pytest.raises(chatcore.ChatcoreError, match="CC_ERR_INVALID"):
        parse_direct_chat_id("d:bob:alice")  # not canonical


def test_error_codes():
    assert error_code_for(chatcore.ErrorCode.RATE_LIMITED) == 9
    assert error_code_name(9) == "ERROR_CODE_RATE_LIMITED"
    assert error_code_for(chatcore.ErrorCode.JWT_EXPIRED) == 4
    assert error_code_name(99) is None
