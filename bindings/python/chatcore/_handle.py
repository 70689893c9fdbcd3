"""The lifetime of one C object owned from Python.

A Handle frees its pointer exactly once, and never while a call is using it or
another object depends on it: ctypes releases the GIL during a foreign call, so
another thread may close() an object while a call on it runs; the free then
waits until that call has left. After close() every new use raises ClosedError.
That is what makes a use after free unreachable from Python."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from .errors import ClosedError, ErrorCode


class Handle:
    __slots__ = ("_ptr", "_free", "_lock", "_users", "_closed", "_what", "_keep")

    def __init__(self, ptr: Optional[int], free: Callable[[int], None], what: str,
                 keep: object = None) -> None:
        """`keep`: what the C object calls or borrows (a clock's ctypes thunk),
        held until the pointer is freed."""
        # A constructor that returned 0 set its out-pointer: never NULL here.
        assert ptr is not None, f"{what}: NULL from a successful constructor"
        self._ptr: Optional[int] = ptr
        self._free = free
        self._lock = threading.Lock()
        self._users = 0
        self._closed = False
        self._what = what
        self._keep = keep

    @property
    def closed(self) -> bool:
        return self._closed

    def enter(self) -> int:
        """Marks the pointer in use and returns it; ClosedError once closed."""
        with self._lock:
            if self._closed or self._ptr is None:
                raise ClosedError(ErrorCode.CLOSED, f"{self._what} is closed")
            self._users += 1
            return self._ptr

    def leave(self) -> None:
        """Ends a use begun by enter(); the last one after close() frees."""
        with self._lock:
            self._users -= 1
            if self._closed and self._users == 0:
                self._release()

    def close(self) -> None:
        """No new use may begin; the pointer is freed now, or when the last use
        in progress (a call, a dependent object) leaves. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._users == 0:
                self._release()

    def _release(self) -> None:
        ptr, self._ptr = self._ptr, None
        if ptr is not None:
            self._free(ptr)
        self._keep = None


class Using:
    """`with Using(handle) as ptr:` holds a use of `handle` for the block."""

    __slots__ = ("_handle",)

    def __init__(self, handle: Handle) -> None:
        self._handle = handle

    def __enter__(self) -> int:
        return self._handle.enter()

    def __exit__(self, *exc: Any) -> None:
        self._handle.leave()


class Closeable:
    """Base of every class that owns a C object: close() frees it (idempotent),
    `with` closes it at the end of the block, and garbage collection closes it
    too. After close(), every method raises ClosedError."""

    _handle: Optional[Handle] = None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    @property
    def closed(self) -> bool:
        return self._handle is None or self._handle.closed

    def __enter__(self: Any) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may be gone
            pass

    def _use(self) -> Using:
        if self._handle is None:
            raise ClosedError(ErrorCode.CLOSED, f"{type(self).__name__} is closed")
        return Using(self._handle)


# Exceptions raised by Python callbacks (clocks) that C called: the callback
# cannot raise through C, so it parks the exception here and the method that made
# the C call raises it once the call returns.
_pending = threading.local()


def park(exc: BaseException) -> None:
    if getattr(_pending, "exc", None) is None:
        _pending.exc = exc


def clear_parked() -> None:
    _pending.exc = None


def raise_parked() -> None:
    exc = getattr(_pending, "exc", None)
    if exc is not None:
        _pending.exc = None
        raise exc


def seconds_to_ns(value: object, what: str) -> int:
    """A clock callback's result (seconds, int or float) in whole nanoseconds,
    checked to fit a uint64_t."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{what} must return int or float seconds, not "
                        f"{type(value).__name__}")
    ns = value * 1_000_000_000 if isinstance(value, int) else round(value * 1e9)
    if not 0 <= ns < 1 << 64:
        raise ValueError(f"{what} returned {value!r}: out of range")
    return int(ns)
