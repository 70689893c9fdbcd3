"""An embedded chat server: libchatcore's gateway, chat service and storage
(SQLite in a file, or in memory) on a thread of their own, started from
Python, with Python callbacks for what applications customise.

    >>> import chatcore
    >>> def moderate(draft):
    ...     if "spam" in draft.text:
    ...         raise chatcore.Reject("no spam here")
    ...     return draft.text.replace("darn", "****")
    >>> with chatcore.Server(verify_token=lambda token: token.removeprefix("user:"),
    ...                      before_store=moderate) as server:
    ...     server.port > 0
    True

Callbacks run on the server's thread (ctypes takes the GIL for them), one at
a time, and hold the chat loop while they run: keep them short and queue
slow work (a webhook call) elsewhere. What a callback raises never reaches
C: a token check that raises refuses the token; a `before_store` that raises
(anything but Reject) refuses the message with the INTERNAL error code and
"the server's message hook failed"; an `after_store` that raises is
ignored. Each such exception is logged with its traceback on the
"chatcore.server" logger. The server keeps running."""

from __future__ import annotations

import atexit
import ctypes
import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from . import _lib
from .errors import ChatcoreError, ClosedError, ErrorCode, check
from .jwt import Verifier

log = logging.getLogger("chatcore.server")

# Servers still running when the interpreter exits are stopped first: their
# thread must not call into an interpreter that is being torn down.
_running: "weakref.WeakSet[Server]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_running):
        server.stop()

# Protocol error codes a rejection may carry (docs/protocol.md, ErrorCode).
_CODES = {
    "BAD_REQUEST": 1, "UNAUTHORIZED": 4, "FORBIDDEN": 5, "NOT_FOUND": 7,
    "TOO_LARGE": 8, "RATE_LIMITED": 9, "CONFLICT": 10, "INTERNAL": 12,
    "UNAVAILABLE": 13,
}
_REASON_MAX = 256  # CC_HOOK_REASON_MAX
_JWT_SIGNATURE = -42  # CC_ERR_JWT_SIGNATURE: "token signature invalid"
_JWT_CLAIM = -45  # CC_ERR_JWT_CLAIM
_KINDS = {1: "message", 2: "edit", 3: "delete", 4: "membership"}


class Reject(Exception):
    """Raise it from `before_store` (or return it) to refuse a message: the
    sender gets an error reply with `code` (a protocol ErrorCode name, default
    "FORBIDDEN") and `reason` (at most 256 bytes of UTF-8 are sent)."""

    def __init__(self, reason: str = "refused by the server",
                 code: str = "FORBIDDEN") -> None:
        if code not in _CODES:
            raise ValueError(f"code must be one of {', '.join(_CODES)}, not {code!r}")
        super().__init__(reason)
        self.reason = reason
        self.code = code


@dataclass(frozen=True)
class Draft:
    """A message (kind "message", from sendMessage) or an edit (kind "edit",
    from editMessage) about to be stored, as `before_store` sees it."""

    kind: str
    chat_id: str
    sender_id: str
    text: str
    client_msg_id: str = ""  #: "message": the sender's idempotency key
    payload: bytes = b""  #: "message": the opaque payload
    target_seq: int = 0  #: "edit": the seq of the message edited


@dataclass(frozen=True)
class StoredEntry:
    """An entry once durable, as `after_store` sees it: kind "message",
    "edit" or "delete", its per-chat `seq`, and what it carries."""

    kind: str
    chat_id: str
    seq: int
    sender_id: str
    text: str
    at_ms: int
    client_msg_id: str = ""
    payload: bytes = b""
    target_seq: int = 0


def _s(c: Any) -> str:
    return ctypes.string_at(c.ptr, c.len).decode("utf-8", "replace") if c.len else ""


def _b(c: Any) -> bytes:
    return ctypes.string_at(c.ptr, c.len) if c.len else b""


def _utf8_prefix(text: str, limit: int) -> bytes:
    """`text` as UTF-8 without NULs, cut at a character boundary to `limit`."""
    raw = text.replace("\0", "").encode("utf-8")
    return raw[:limit].decode("utf-8", "ignore").encode("utf-8")


TokenCheck = Callable[[str], Optional[str]]
BeforeStore = Callable[[Draft], Union[None, bool, str, Reject]]
AfterStore = Callable[[StoredEntry], Any]


class Server:
    """A chat server listening on `listen` ("HOST:PORT" with an IP address;
    port 0 takes a free port, see `port`), WebSocket endpoint /ws, speaking
    the protocol of docs/protocol.md.

    `db`: an SQLite file (created if missing; every acked message is on
    disk), or None to keep everything in memory until the server stops.
    Handshake tokens are checked by exactly one of:
      `verify_token(token) -> user id`: the application's own check, given
      the bearer token as the client sent it; return the user id (1..64 bytes
      of A-Z a-z 0-9 . _ @ -), or None to refuse;
      `jwt`: a chatcore.jwt.Verifier (it must stay open while the server
      runs).
    `before_store(draft)`: called for every message and edit before it is
    stored; return None (or True) to store it as sent, a str to store that
    text instead, or return/raise Reject to refuse it.
    `after_store(entry)`: called with every message, edit and deletion once
    it is durable (before the sender's ack); its result is ignored.
    `drain_timeout`: seconds stop() gives clients to answer the close.

    start() (or `with`) starts it; stop() (or leaving the `with` block) closes
    the sessions (1001), finishes the storage's writes and ends the thread.
    Errors: ChatcoreError (INVALID for a bad argument; IO when the address
    cannot be bound or the database opened, with the reason)."""

    def __init__(self, listen: str = "127.0.0.1:0", db: Optional[str] = None, *,
                 verify_token: Optional[TokenCheck] = None,
                 jwt: Optional[Verifier] = None,
                 before_store: Optional[BeforeStore] = None,
                 after_store: Optional[AfterStore] = None,
                 drain_timeout: float = 2.0) -> None:
        if (verify_token is None) == (jwt is None):
            raise TypeError("give exactly one of verify_token and jwt")
        for name, fn in (("verify_token", verify_token), ("before_store", before_store),
                         ("after_store", after_store)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable")
        if not 0 <= drain_timeout <= 600:
            raise ValueError("drain_timeout must be 0..600 seconds")
        self.listen = listen
        self.db = db
        self._verify_token = verify_token
        self._jwt = jwt
        self._before_store = before_store
        self._after_store = after_store
        self._drain_ms = int(drain_timeout * 1000)
        self._ptr: Optional[int] = None
        self._jwt_use: Optional[Any] = None
        self._thunks: list[Any] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._host = listen.rsplit(":", 1)[0]
        self.port = 0

    # ---- life ----

    def start(self) -> "Server":
        """Starts the server; returns once it accepts connections."""
        lib = _lib.lib()
        with self._lock:
            if self._ptr is not None:
                raise ChatcoreError(ErrorCode.STATE, "the server is running")
            if self._stopped.is_set():
                raise ClosedError(ErrorCode.CLOSED, "the server was stopped")
            opt = ctypes.c_void_p()
            check(lib.cc_server_options_new(ctypes.byref(opt)))
            jwt_use = None
            try:
                check(lib.cc_server_options_set_listen(opt, _lib.c_bytes(self.listen,
                                                                         "listen")),
                      f"listen {self.listen!r}: expected HOST:PORT with an IP address")
                if self.db is not None:
                    check(lib.cc_server_options_set_db(opt, _lib.c_bytes(self.db, "db")),
                          f"db {self.db!r}")
                check(lib.cc_server_options_set_drain_timeout(opt, self._drain_ms))
                thunks = []
                if self._verify_token is not None:
                    t = _lib.TOKEN_VERIFY_FN(self._on_token)
                    thunks.append(t)
                    check(lib.cc_server_options_set_token_verifier(opt, t, None))
                else:
                    assert self._jwt is not None
                    jwt_use = self._jwt._use()  # held while the server runs
                    check(lib.cc_server_options_set_jwt(opt, jwt_use.__enter__()))
                if self._before_store is not None:
                    t = _lib.MESSAGE_HOOK_FN(self._on_message)
                    thunks.append(t)
                    check(lib.cc_server_options_set_message_hook(opt, t, None))
                if self._after_store is not None:
                    t = _lib.STORED_HOOK_FN(self._on_stored)
                    thunks.append(t)
                    check(lib.cc_server_options_set_stored_hook(opt, t, None))
                out = ctypes.c_void_p()
                err = ctypes.create_string_buffer(512)
                # ctypes lets go of the GIL for the call: the server's thread
                # may run Python callbacks before it returns.
                rc = lib.cc_server_start(ctypes.byref(out), opt, None, err, len(err))
                check(rc, err.value.decode("utf-8", "replace") or None)
            except BaseException:
                if jwt_use is not None:
                    jwt_use.__exit__(None, None, None)
                raise
            finally:
                lib.cc_server_options_free(opt)
            self._ptr = out.value
            self._thunks = thunks
            self._jwt_use = jwt_use
            self.port = lib.cc_server_port(self._ptr)
            _running.add(self)
        log.info("chat server listening on %s", self.url)
        return self

    def stop(self) -> None:
        """Closes every session (1001) and waits for them for the drain
        timeout, finishes the storage's writes, and ends the server's thread.
        Idempotent. Not from inside a callback (ChatcoreError STATE)."""
        with self._lock:
            ptr = self._ptr
            if ptr is None:
                self._stopped.set()
                return
            rc = _lib.lib().cc_server_stop(ptr)
            check(rc, "stop() called from one of the server's own callbacks")
            self._ptr = None
            _running.discard(self)
            self._thunks = []  # no callback can run any more
            if self._jwt_use is not None:
                self._jwt_use.__exit__(None, None, None)
                self._jwt_use = None
            self._stopped.set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Blocks until stop() was called (from another thread) or `timeout`
        seconds passed; True once stopped."""
        return self._stopped.wait(timeout)

    @property
    def running(self) -> bool:
        return self._ptr is not None

    @property
    def url(self) -> str:
        """The WebSocket endpoint, e.g. "ws://127.0.0.1:8080/ws"."""
        return f"ws://{self._host}:{self.port}/ws"

    def __enter__(self) -> "Server":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def __repr__(self) -> str:
        return f"<chatcore.Server {self.url if self.running else 'stopped'}>"

    # ---- callbacks, on the server's thread (ctypes holds the GIL) ----

    def _on_token(self, _ud: Any, token: Any, length: int, claims: Any) -> int:
        try:
            raw = ctypes.string_at(token, length)
            assert self._verify_token is not None
            user: object = self._verify_token(raw.decode("utf-8"))
            if user is None or user is False:
                return _JWT_SIGNATURE
            if not isinstance(user, str):
                raise TypeError(f"verify_token returned {type(user).__name__}, "
                                "expected a user id (str) or None")
            ub = user.encode("utf-8")
            if _lib.lib().cc_protocol_check_user_id(ub, len(ub)) != 0:
                raise ValueError(f"verify_token returned {user!r}: not a user id "
                                 "(1..64 bytes of A-Z a-z 0-9 . _ @ -)")
            c = claims.contents
            # (c.sub would be a copy: write into the struct itself)
            ctypes.memmove(ctypes.addressof(c) + _lib.CJwtClaims.sub.offset, ub, len(ub))
            c.sub_len = len(ub)
            c.exp = 0  # the session lasts until it ends
            return 0
        except BaseException:  # never into C: refused, and said why in the log
            log.exception("verify_token raised: the token is refused")
            return _JWT_CLAIM

    def _on_message(self, _ud: Any, draft_p: Any, reply: Any) -> None:
        lib = _lib.lib()
        try:
            d = draft_p.contents
            kind = _KINDS.get(d.kind, "message")
            draft = Draft(kind=kind, chat_id=_s(d.chat_id), sender_id=_s(d.sender_id),
                          text=_s(d.text), client_msg_id=_s(d.client_msg_id),
                          payload=_b(d.payload), target_seq=d.target_seq)
            assert self._before_store is not None
            try:
                verdict = self._before_store(draft)
            except Reject as r:
                verdict = r
            if verdict is None or verdict is True:
                lib.cc_hook_accept(reply)
                return
            if isinstance(verdict, Reject):
                reason = _utf8_prefix(verdict.reason, _REASON_MAX)
                check(lib.cc_hook_reject(reply, _CODES[verdict.code], reason))
                return
            if isinstance(verdict, str):
                text = verdict.encode("utf-8")
                if text == draft.text.encode("utf-8"):
                    lib.cc_hook_accept(reply)
                    return
                rc = lib.cc_hook_rewrite(reply, text, len(text))
                if rc != 0:
                    raise ValueError(f"before_store's rewrite is unusable "
                                     f"({len(text)} bytes, empty or too long)")
                return
            raise TypeError(f"before_store returned {type(verdict).__name__}: expected "
                            "None, True, a str (the new text) or Reject")
        except BaseException:
            log.exception("before_store raised: the message is refused")
            lib.cc_hook_reject(reply, _CODES["INTERNAL"], b"the server's message hook failed")

    def _on_stored(self, _ud: Any, entry_p: Any) -> None:
        try:
            e = entry_p.contents
            entry = StoredEntry(kind=_KINDS.get(e.kind, "message"), chat_id=_s(e.chat_id),
                                seq=e.seq, sender_id=_s(e.sender_id), text=_s(e.text),
                                at_ms=e.at_ms, client_msg_id=_s(e.client_msg_id),
                                payload=_b(e.payload), target_seq=e.target_seq)
            assert self._after_store is not None
            self._after_store(entry)
        except BaseException:
            log.exception("after_store raised (the entry is stored all the same)")
