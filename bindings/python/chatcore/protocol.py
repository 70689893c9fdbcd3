"""The chatcore.v1 wire protocol (include/chatcore/protocol.h): frames in either
encoding to and from dicts, validation, transcoding, subprotocol negotiation and
identifiers.

Dicts follow the proto3 canonical JSON mapping of the schema
(proto/chatcore/v1/chatcore.proto; docs/protocol.md), exactly as a JSON client
sends them: lowerCamelCase names, 64-bit integers as strings ("seq": "42"),
enums by name, `bytes` fields as base64 strings, default values omitted. When
encoding, a dict may also hold Python ints for 64-bit fields and bytes objects
for `bytes` fields (they are written as base64).

    >>> from chatcore.protocol import Encoding, FrameKind, encode, decode
    >>> frame = {"requestId": 1, "ping": {"clientTimeMs": 1700000000000}}
    >>> wire = encode(frame, FrameKind.CLIENT, Encoding.PROTOBUF)
    >>> decode(wire, FrameKind.CLIENT, Encoding.PROTOBUF)
    {'requestId': '1', 'ping': {'clientTimeMs': '1700000000000'}}
"""

from __future__ import annotations

import base64
import ctypes
import enum
import json
from typing import Any, Mapping, Optional, Tuple, Union

from . import _lib
from ._handle import Closeable, Handle
from .errors import ChatcoreError, ErrorCode, check, error

__all__ = [
    "Encoding", "FrameKind", "Limits", "encode", "decode", "validate", "transcode",
    "select_subprotocol", "is_valid_user_id", "is_valid_chat_id",
    "is_valid_client_msg_id", "direct_chat_id", "parse_direct_chat_id",
    "error_code_for", "error_code_name", "PROTOCOL_NAME",
]

PROTOCOL_NAME = "chatcore.v1"
_ERRMSG_SIZE = 256

Data = Union[bytes, bytearray, memoryview, str]


class Encoding(enum.IntEnum):
    """A frame encoding; stable ABI numbers."""

    JSON = 1  #: proto3 JSON, WebSocket text frames ("chatcore.v1.json")
    PROTOBUF = 2  #: protobuf binary, WebSocket binary frames ("chatcore.v1.proto")

    @property
    def subprotocol(self) -> str:
        """The WebSocket subprotocol name of this encoding."""
        return str(_lib.lib().cc_protocol_subprotocol(self.value).decode())

    @classmethod
    def from_subprotocol(cls, name: Union[str, bytes]) -> "Encoding":
        """The encoding of subprotocol `name` (exact, case-sensitive).
        ChatcoreError UNSUPPORTED for any other name."""
        b = _lib.c_bytes(name, "name")
        out = ctypes.c_int(0)
        check(_lib.lib().cc_protocol_encoding_from_subprotocol(
            b, len(b), ctypes.byref(out)), repr(name))
        return cls(out.value)


class FrameKind(enum.IntEnum):
    """Which side wrote a frame: selects ClientFrame or ServerFrame and the
    default limits."""

    CLIENT = 1  #: a ClientFrame (commands), what a server reads
    SERVER = 2  #: a ServerFrame (replies, events), what a client reads


def select_subprotocol(header: Union[str, bytes, None]) -> Tuple[Encoding, Optional[str]]:
    """Chooses the encoding for a WebSocket handshake from the client's
    Sec-WebSocket-Protocol value (None when absent). Returns (encoding, the
    subprotocol to echo in the response, or None to send no header). Raises
    ChatcoreError UNSUPPORTED when the client offered only other subprotocols
    (refuse the handshake)."""
    b = b"" if header is None else _lib.c_bytes(header, "header")
    out = ctypes.c_int(0)
    rc = check(_lib.lib().cc_protocol_select_subprotocol(
        b, len(b), ctypes.byref(out)), repr(header))
    enc = Encoding(out.value)
    return enc, (enc.subprotocol if rc == 1 else None)


class Limits(Closeable):
    """Limits applied when decoding frames of `kind`; arguments left None keep
    the defaults for that kind (client frames: 64 KiB frames, 16 KiB fields,
    1024 elements, depth 16, unknown fields refused; server frames: 4 MiB,
    1 MiB, 65536, 16, unknown fields skipped). Immutable once made, so any
    number of threads may use it at once."""

    def __init__(self, kind: FrameKind, *, max_frame: Optional[int] = None,
                 max_field: Optional[int] = None, max_repeated: Optional[int] = None,
                 max_depth: Optional[int] = None,
                 allow_unknown: Optional[bool] = None) -> None:
        lib = _lib.lib()
        self.kind = FrameKind(kind)
        settings = (("max_frame", max_frame, lib.cc_protocol_limits_set_max_frame,
                     1 << 64),
                    ("max_field", max_field, lib.cc_protocol_limits_set_max_field,
                     1 << 64),
                    ("max_repeated", max_repeated,
                     lib.cc_protocol_limits_set_max_repeated, 1 << 64),
                    ("max_depth", max_depth, lib.cc_protocol_limits_set_max_depth,
                     1 << 32))
        for name, value, _, bound in settings:
            if value is not None and (not isinstance(value, int)
                                      or isinstance(value, bool)):
                raise TypeError(f"{name} must be an int")
            if value is not None and not 0 <= value < bound:
                raise ChatcoreError(ErrorCode.INVALID, f"{name} {value} out of range")
        out = ctypes.c_void_p()
        check(lib.cc_protocol_limits_new(ctypes.byref(out), self.kind, None))
        self._handle = Handle(out.value, lib.cc_protocol_limits_free,
                              "Limits")
        with self._use() as ptr:
            for name, value, setter, _ in settings:
                if value is not None:
                    check(setter(ptr, value), f"{name} {value}")
            if allow_unknown is not None:
                check(lib.cc_protocol_limits_set_allow_unknown(
                    ptr, 1 if allow_unknown else 0))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<chatcore.protocol.Limits {self.kind.name} {state}>"


def _frame_bytes(data: Data, enc: Encoding) -> bytes:
    if isinstance(data, str):
        if enc != Encoding.JSON:
            raise TypeError("a protobuf frame must be bytes-like, not str")
        return data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"a frame must be bytes-like (or str for JSON), not "
                    f"{type(data).__name__}")


def _call(fn: Any, limits: Optional[Limits], kind: FrameKind, *args: Any) -> int:
    """Runs fn(*args, limits pointer, errmsg, size) holding `limits`, and raises
    the error with the library's explanation."""
    if limits is not None and not isinstance(limits, Limits):
        raise TypeError("limits must be a Limits")
    if limits is not None and limits.kind != kind:
        raise ValueError(f"limits are for {limits.kind.name} frames, not {kind.name}")
    errmsg = ctypes.create_string_buffer(_ERRMSG_SIZE)
    if limits is None:
        rc = fn(*args, None, errmsg, _ERRMSG_SIZE)
    else:
        with limits._use() as ptr:
            rc = fn(*args, ptr, errmsg, _ERRMSG_SIZE)
    if rc < 0:
        raise error(rc, errmsg.value.decode("utf-8", "replace") or None)
    return int(rc)


def validate(data: Data, kind: FrameKind, encoding: Encoding,
             limits: Optional[Limits] = None) -> None:
    """Decodes and checks one frame (limits, types, unknown fields, and for
    client frames the rules of docs/protocol.md). Raises ProtocolError (PROTO,
    PROTO_TYPE, PROTO_UNKNOWN) or ChatcoreError (TOO_LARGE, INVALID), whose
    `detail` says where ("sendMessage.chatId: expected a string")."""
    enc, kind = Encoding(encoding), FrameKind(kind)
    b = _frame_bytes(data, enc)
    _call(_lib.lib().cc_protocol_validate, limits, kind,
          kind, enc, b, len(b))


def transcode(data: Data, kind: FrameKind, from_encoding: Encoding,
              to_encoding: Encoding, limits: Optional[Limits] = None) -> bytes:
    """Validates a frame as validate() does and re-encodes it (the same
    encoding on both sides gives the canonical form). Returns the frame's bytes
    (UTF-8 text for JSON)."""
    src, dst, kind = Encoding(from_encoding), Encoding(to_encoding), FrameKind(kind)
    b = _frame_bytes(data, src)
    lib = _lib.lib()
    out = ctypes.c_void_p()

    def run(kind: int, src: int, data: bytes, size: int, dst: int, limits: Any,
            errmsg: Any, errmsg_size: int) -> int:
        return int(lib.cc_protocol_transcode(
            ctypes.byref(out), kind, src, data, size, dst, limits, None, errmsg,
            errmsg_size))

    _call(run, limits, kind, kind, src, b, len(b), dst)
    try:
        return ctypes.string_at(lib.cc_buf_cdata(out),
                                lib.cc_buf_len(out))
    finally:
        lib.cc_buf_unref(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not allowed in a frame")


def encode(frame: Mapping[str, Any], kind: FrameKind, encoding: Encoding,
           limits: Optional[Limits] = None) -> bytes:
    """Encodes a frame given as a dict (see the module's docstring) in
    `encoding`, after checking it as validate() does. Returns bytes (UTF-8 text
    for JSON). Raises TypeError for values JSON cannot hold, and the errors of
    validate()."""
    if not isinstance(frame, Mapping):
        raise TypeError(f"frame must be a mapping, not {type(frame).__name__}")
    text = json.dumps(frame, default=_json_default, ensure_ascii=False,
                      allow_nan=False, separators=(",", ":")).encode("utf-8")
    return transcode(text, kind, Encoding.JSON, encoding, limits)


def decode(data: Data, kind: FrameKind, encoding: Encoding,
           limits: Optional[Limits] = None) -> dict[str, Any]:
    """Decodes and checks one frame and returns it as a dict in the proto3 JSON
    mapping (see the module's docstring). `data` is bytes-like, or str for
    JSON. Raises the errors of validate()."""
    text = transcode(data, kind, encoding, Encoding.JSON, limits)
    result = json.loads(text)
    assert isinstance(result, dict)
    return result


# ---- identifiers ----

def _check_id(fn_name: str, value: Union[str, bytes]) -> bool:
    b = _lib.c_bytes(value, "id")
    return bool(getattr(_lib.lib(), fn_name)(b, len(b)) == 0)


def is_valid_user_id(user_id: Union[str, bytes]) -> bool:
    """True for 1..64 bytes of [A-Za-z0-9._@-]."""
    return _check_id("cc_protocol_check_user_id", user_id)


def is_valid_chat_id(chat_id: Union[str, bytes]) -> bool:
    """True for 1..160 bytes of [A-Za-z0-9._:@-]."""
    return _check_id("cc_protocol_check_chat_id", chat_id)


def is_valid_client_msg_id(client_msg_id: Union[str, bytes]) -> bool:
    """True for 1..64 bytes of [A-Za-z0-9._:@-] (a UUID fits)."""
    return _check_id("cc_protocol_check_client_msg_id", client_msg_id)


def direct_chat_id(user_a: str, user_b: str) -> str:
    """The id of the direct chat of two users, in either order
    ("d:alice:bob"). ChatcoreError INVALID for an invalid or equal user id."""
    a, b = _lib.c_bytes(user_a, "user_a"), _lib.c_bytes(user_b, "user_b")
    out = ctypes.create_string_buffer(2 + 2 * 64 + 1 + 1)
    n = ctypes.c_size_t(0)
    check(_lib.lib().cc_protocol_direct_chat_id(
        out, len(out), ctypes.byref(n), a, len(a), b, len(b)),
        f"{user_a!r}, {user_b!r}")
    return out.raw[:n.value].decode("ascii")


def parse_direct_chat_id(chat_id: str) -> Tuple[str, str]:
    """The two user ids of a canonical direct chat id, lower first.
    ChatcoreError INVALID for anything else."""
    b = _lib.c_bytes(chat_id, "chat_id")
    lo, hi = ctypes.c_void_p(), ctypes.c_void_p()
    lo_len, hi_len = ctypes.c_size_t(0), ctypes.c_size_t(0)
    # The outputs point into `b`, which this frame keeps alive.
    check(_lib.lib().cc_protocol_parse_direct_chat_id(
        b, len(b), ctypes.byref(lo), ctypes.byref(lo_len), ctypes.byref(hi),
        ctypes.byref(hi_len)), repr(chat_id))
    return (ctypes.string_at(lo, lo_len.value).decode("ascii"),
            ctypes.string_at(hi, hi_len.value).decode("ascii"))


# ---- error codes carried in Error.code ----

def error_code_for(err: int) -> int:
    """The protocol ErrorCode number a server reports for library error `err`."""
    return int(_lib.lib().cc_protocol_error_code_for(int(err)))


def error_code_name(code: int) -> Optional[str]:
    """The JSON name of protocol ErrorCode `code` ("ERROR_CODE_RATE_LIMITED"),
    None for a number the schema does not define."""
    name = _lib.lib().cc_protocol_error_code_name(int(code))
    return None if name is None else name.decode()
