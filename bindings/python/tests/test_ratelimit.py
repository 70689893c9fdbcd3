"""The rate limiter through the bindings, on a clock the test moves."""

import threading

import pytest

import chatcore
from chatcore.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_burst_then_limited_then_refilled():
    clock = Clock()
    with RateLimiter(2, 1000, burst=3, clock=clock) as rl:  # one event per 0.5 s
        for _ in range(3):
            rl.take("ip:10.0.0.1")
        with pytest.raises(chatcore.RateLimitedError) as exc:
            rl.take("ip:10.0.0.1")
        assert exc.value.name == "RATE_LIMITED"
        assert str(exc.value) == "CC_ERR_RATE_LIMITED: rate limit exceeded"
        assert exc.value.retry_after_ns == 500_000_000
        assert exc.value.retry_after == pytest.approx(0.5)
        # a refused take takes nothing: the same wait is asked again
        with pytest.raises(chatcore.RateLimitedError) as exc:
            rl.take("ip:10.0.0.1")
        assert exc.value.retry_after_ns == 500_000_000
        clock.t += 0.25
        assert not rl.allow("ip:10.0.0.1")
        clock.t += 0.25
        assert rl.allow("ip:10.0.0.1")
        assert not rl.allow("ip:10.0.0.1")
        # other keys have their own bucket
        assert rl.allow("ip:10.0.0.2")
        assert len(rl) == 2


def test_str_and_bytes_name_the_same_key():
    with RateLimiter(1, 1000, burst=1, clock=Clock()) as rl:
        assert rl.allow("user:zoë")
        assert not rl.allow("user:zoë".encode("utf-8"))
        assert not rl.allow(bytearray("user:zoë".encode("utf-8")))
        assert rl.allow(b"user:zo\xc3")  # a different byte string
        with pytest.raises(TypeError):
            rl.take(42)


def test_costs():
    with RateLimiter(1, 1000, burst=5, clock=Clock()) as rl:
        rl.take("k", cost=5)
        assert not rl.allow("k", cost=1)
        with pytest.raises(chatcore.ChatcoreError) as exc:
            rl.take("other", cost=6)  # could never be allowed
        assert exc.value.name == "TOO_LARGE"
        assert not isinstance(exc.value, chatcore.RateLimitedError)
        for bad in ({"cost": 0}, {"key": ""}, {"key": b"x" * 65536}):
            args = dict({"key": "k2", "cost": 1}, **bad)
            with pytest.raises(chatcore.ChatcoreError) as exc:
                rl.take(**args)
            assert exc.value.name == "INVALID", bad


def test_max_keys_drops_the_least_recently_used():
    with RateLimiter(1, 1000, burst=1, max_keys=2, clock=Clock()) as rl:
        assert rl.allow("a") and rl.allow("b")
        assert rl.allow("c")  # evicts "a"
        assert len(rl) == 2
        assert rl.allow("a")  # its bucket was reset


def test_bad_settings():
    for kwargs in ({"events": 0}, {"period_ms": 0}, {"burst": 0}, {"max_keys": 0},
                   {"burst": 1 << 32}, {"events": -1}):
        with pytest.raises(chatcore.ChatcoreError) as exc:
            RateLimiter(**kwargs)
        assert exc.value.name == "INVALID", kwargs
    with pytest.raises(TypeError):
        RateLimiter(events=1.5)
    with pytest.raises(TypeError):
        RateLimiter(clock=5)


def test_defaults_use_the_real_clock():
    with RateLimiter() as rl:  # 10/s, burst 20
        assert sum(rl.allow("k") for _ in range(25)) == 20


def test_clock_errors_propagate_and_reentry_is_refused():
    def broken():
        raise RuntimeError("clock broke")

    with RateLimiter(clock=broken) as rl:
        with pytest.raises(RuntimeError, match="clock broke"):
            rl.take("k")

    holder = []

    def reentrant():
        holder[0].take("inner")
        return 1.0

    with RateLimiter(clock=reentrant) as rl:
        holder.append(rl)
        with pytest.raises(chatcore.ChatcoreError) as exc:
            rl.take("outer")
        assert exc.value.name == "STATE"


def test_close_from_inside_the_clock_waits_for_the_call():
    holder = []

    def closing():
        holder[0].close()
        return 5.0

    rl = RateLimiter(clock=closing)
    holder.append(rl)
    rl.take("k")  # the limiter is freed once this call has left
    assert rl.closed
    with pytest.raises(chatcore.ClosedError):
        rl.take("k")


def test_use_after_close_raises():
    rl = RateLimiter()
    rl.close()
    rl.close()
    for call in (lambda: rl.take("k"), lambda: rl.allow("k"), lambda: len(rl)):
        with pytest.raises(chatcore.ClosedError) as exc:
            call()
        assert exc.value.name == "CLOSED"


def test_threads_share_one_limiter():
    """The C limiter is not thread-safe; the object's lock makes sharing safe:
    exactly the burst is allowed however the threads interleave."""
    clock = Clock()
    with RateLimiter(1, 1000, burst=1000, clock=clock) as rl:
        allowed = []

        def worker():
            allowed.append(sum(rl.allow("shared") for _ in range(500)))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sum(allowed) == 1000
