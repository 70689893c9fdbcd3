"""Keyed rate limiting (include/chatcore/ratelimit.h): GCRA, a token bucket kept
as one timestamp per key.

    >>> from chatcore.ratelimit import RateLimiter
    >>> with RateLimiter(events=1, period_ms=1000, burst=2) as rl:
    ...     rl.allow("ip:10.0.0.1"), rl.allow("ip:10.0.0.1"), rl.allow("ip:10.0.0.1")
    (True, True, False)
"""

from __future__ import annotations

import ctypes
import threading
from typing import Any, Callable, Optional, Union

from . import _lib
from ._handle import Closeable, Handle, clear_parked, park, raise_parked, seconds_to_ns
from .errors import ChatcoreError, ErrorCode, RateLimitedError, check

__all__ = ["RateLimiter"]

Key = Union[str, bytes, bytearray, memoryview]


class RateLimiter(Closeable):
    """Allows `events` per `period_ms` milliseconds per key, in bursts of up to
    `burst`, holding at most `max_keys` keys (the least recently used is
    dropped first). Arguments left None keep the library's defaults (10 events/s,
    burst 20, 1,000,000 keys).

    Keys are bytes; a str key is encoded as UTF-8, so "a" and b"a" are the same
    key. `clock`: a callable returning monotonic seconds (like time.monotonic);
    None uses the system's monotonic clock. It runs during take(); what it
    raises, take() raises.

    The C limiter is not thread-safe; this object serializes calls with a lock,
    so threads may share it."""

    def __init__(self, events: Optional[int] = None, period_ms: Optional[int] = None,
                 *, burst: Optional[int] = None, max_keys: Optional[int] = None,
                 clock: Optional[Callable[[], float]] = None) -> None:
        lib = _lib.lib()
        for name, value in (("events", events), ("period_ms", period_ms),
                            ("burst", burst), ("max_keys", max_keys)):
            if value is not None and (not isinstance(value, int)
                                      or isinstance(value, bool)):
                raise TypeError(f"{name} must be an int")
            if value is not None and not 0 <= value < 1 << 64:
                raise ChatcoreError(ErrorCode.INVALID, f"{name} {value} out of range")
        if burst is not None and burst >= 1 << 32:
            raise ChatcoreError(ErrorCode.INVALID, f"burst {burst} out of range")
        c_clock = None
        if clock is not None:
            if not callable(clock):
                raise TypeError("clock must be callable")
            c_clock = _lib.CLOCK_FN(self._make_tick(clock))
        self._lock = threading.RLock()
        self._depth = 0
        opt = ctypes.c_void_p()
        check(lib.cc_ratelimit_options_new(ctypes.byref(opt)))
        try:
            if events is not None or period_ms is not None:
                ev = 10 if events is None else events
                per = 1000 if period_ms is None else period_ms
                check(lib.cc_ratelimit_options_set_rate(opt, ev, per),
                      f"rate {ev} per {per} ms")
            if burst is not None:
                check(lib.cc_ratelimit_options_set_burst(opt, burst),
                      f"burst {burst}")
            if max_keys is not None:
                check(lib.cc_ratelimit_options_set_max_keys(opt, max_keys),
                      f"max_keys {max_keys}")
            if c_clock is not None:
                check(lib.cc_ratelimit_options_set_clock(opt, c_clock, None))
            out = ctypes.c_void_p()
            check(lib.cc_ratelimit_new(ctypes.byref(out), opt, None))
        finally:
            lib.cc_ratelimit_options_free(opt)

        self._handle = Handle(out.value, lib.cc_ratelimit_free, "RateLimiter",
                              keep=c_clock)

    @staticmethod
    def _make_tick(clock: Callable[[], float]) -> Callable[[Any], int]:
        last = [0]

        def tick(_user_data: Any) -> int:
            try:
                last[0] = seconds_to_ns(clock(), "clock")
            except BaseException as exc:  # noqa: BLE001 - re-raised by take()
                park(exc)  # and the limiter sees time stand still
            return last[0]

        return tick

    def _call(self, fn: Callable[[int], int]) -> int:
        with self._use() as ptr, self._lock:
            if self._depth:
                raise ChatcoreError(ErrorCode.STATE,
                                    "RateLimiter called from inside its own clock")
            self._depth += 1
            try:
                clear_parked()
                rc = fn(ptr)
            finally:
                self._depth -= 1
        raise_parked()
        return rc

    def take(self, key: Key, cost: int = 1) -> None:
        """Takes `cost` events (>= 1) for `key` (1..65535 bytes). Raises
        RateLimitedError (CC_ERR_RATE_LIMITED, with retry_after) when not
        allowed, and then takes nothing; ChatcoreError TOO_LARGE when cost
        exceeds the burst, INVALID for a bad key or cost."""
        k = _lib.c_bytes(key, "key")
        if not isinstance(cost, int) or isinstance(cost, bool):
            raise TypeError("cost must be an int")
        if not 0 <= cost < 1 << 32:
            raise ChatcoreError(ErrorCode.INVALID, f"cost {cost} out of range")
        retry = ctypes.c_uint64(0)
        lib = _lib.lib()
        rc = self._call(lambda ptr: int(lib.cc_ratelimit_take(
            ptr, k, len(k), cost, ctypes.byref(retry))))
        if rc == ErrorCode.RATE_LIMITED:
            raise RateLimitedError(rc, None, retry.value)
        check(rc)

    def allow(self, key: Key, cost: int = 1) -> bool:
        """As take(), but returns False instead of raising RateLimitedError."""
        try:
            self.take(key, cost)
        except RateLimitedError:
            return False
        return True

    def __len__(self) -> int:
        """The number of keys currently held."""
        lib = _lib.lib()
        return self._call(lambda ptr: int(lib.cc_ratelimit_size(ptr)))

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<chatcore.ratelimit.RateLimiter {state}>"
