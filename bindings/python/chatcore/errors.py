"""libchatcore's error codes (include/chatcore/error.h) and the exceptions that
carry them."""

from __future__ import annotations

import enum
from typing import Optional

from . import _lib


class ErrorCode(enum.IntEnum):
    """The CC_ERR_* values of error.h, without their prefix. Stable ABI numbers;
    the test suite checks this list against the loaded library's table."""

    OK = 0
    INVALID = -1
    NOMEM = -2
    NOT_FOUND = -3
    EXISTS = -4
    TOO_LARGE = -5
    UNSUPPORTED = -6
    AGAIN = -7
    STATE = -8
    RATE_LIMITED = -9
    PROTO = -20
    PROTO_UNKNOWN = -21
    PROTO_TYPE = -22
    JWT_MALFORMED = -40
    JWT_ALG = -41
    JWT_SIGNATURE = -42
    JWT_EXPIRED = -43
    JWT_NOT_YET_VALID = -44
    JWT_CLAIM = -45
    JWT_ISSUER = -46
    JWT_AUDIENCE = -47
    JWT_KEY = -48
    IO = -60
    CLOSED = -61
    TIMEOUT = -62
    BACKEND = -63
    UNAVAILABLE = -64
    FATAL = -500
    INTERNAL = -501


def err_name(code: int) -> str:
    """The library's name for `code` without prefix ("JWT_EXPIRED"); "OK" for 0,
    "UNKNOWN" for a value the library does not define."""
    return str(_lib.lib().cc_err_name(code).decode())


def strerror(code: int) -> str:
    """The library's message for `code` ("token expired")."""
    return str(_lib.lib().cc_strerror(code).decode())


def is_fatal(code: int) -> bool:
    """True when `code` leaves the object it came from usable only to be freed."""
    return bool(_lib.lib().cc_err_is_fatal(code))


class ChatcoreError(Exception):
    """A libchatcore call failed with a CC_ERR_* code.

    Attributes: `code` (the negative int), `name` ("JWT_EXPIRED", the CC_ERR_
    suffix), `message` (the library's text for the code) and `detail` (more
    context when the call gave some, such as a protocol decoder's explanation,
    else None). str() gives "CC_ERR_<name>: <message>[: <detail>]"."""

    def __init__(self, code: int, detail: Optional[str] = None) -> None:
        self.code = int(code)
        self.name = err_name(self.code)
        self.message = strerror(self.code)
        self.detail = detail
        text = f"CC_ERR_{self.name}: {self.message}"
        if detail:
            text += f": {detail}"
        super().__init__(text)

    @property
    def error_code(self) -> Optional[ErrorCode]:
        """`code` as an ErrorCode, or None for a code this package does not know."""
        try:
            return ErrorCode(self.code)
        except ValueError:
            return None


class JWTError(ChatcoreError):
    """A token was refused, or a key was unusable (a CC_ERR_JWT_* code)."""


class ProtocolError(ChatcoreError):
    """A frame could not be decoded or broke a protocol rule
    (CC_ERR_PROTO, CC_ERR_PROTO_UNKNOWN, CC_ERR_PROTO_TYPE)."""


class RateLimitedError(ChatcoreError):
    """A rate limiter refused a take (CC_ERR_RATE_LIMITED). `retry_after_ns`
    (and `retry_after`, in seconds) say when the same take would be allowed."""

    def __init__(self, code: int, detail: Optional[str] = None,
                 retry_after_ns: int = 0) -> None:
        super().__init__(code, detail)
        self.retry_after_ns = retry_after_ns

    @property
    def retry_after(self) -> float:
        return self.retry_after_ns / 1e9


class ClosedError(ChatcoreError):
    """The object was closed (CC_ERR_CLOSED); it cannot be used any more."""


def _class_for(code: int) -> type[ChatcoreError]:
    if code == ErrorCode.CLOSED:
        return ClosedError
    if code == ErrorCode.RATE_LIMITED:
        return RateLimitedError
    if ErrorCode.JWT_KEY <= code <= ErrorCode.JWT_MALFORMED:
        return JWTError
    if ErrorCode.PROTO_TYPE <= code <= ErrorCode.PROTO:
        return ProtocolError
    return ChatcoreError


def error(code: int, detail: Optional[str] = None) -> ChatcoreError:
    """The exception for a CC_ERR_* `code`: the most specific subclass of
    ChatcoreError for it."""
    return _class_for(code)(code, detail)


def check(rc: int, detail: Optional[str] = None) -> int:
    """Returns `rc` when it is not negative, else raises error(rc, detail)."""
    if rc < 0:
        raise error(rc, detail)
    return rc
