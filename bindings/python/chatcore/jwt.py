"""JSON Web Token verification (include/chatcore/jwt.h).

    >>> from chatcore.jwt import Algorithm, Verifier, sign_hmac
    >>> secret = b"k" * 32
    >>> token = sign_hmac(Algorithm.HS256, secret, {"sub": "alice", "exp": 4102444800})
    >>> with Verifier(Algorithm.HS256, secret) as v:
    ...     v.verify(token).sub
    'alice'
"""

from __future__ import annotations

import ctypes
import enum
import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Union

from . import _lib
from ._handle import Closeable, Handle, clear_parked, park, raise_parked, seconds_to_ns
from .errors import ChatcoreError, ClosedError, ErrorCode, check

__all__ = ["Algorithm", "Claims", "Verifier", "sign_hmac"]

BytesLike = Union[bytes, bytearray, memoryview]


class Algorithm(enum.IntEnum):
    """The accepted signature algorithms (RFC 7518 names); stable ABI numbers."""

    HS256 = 1  #: HMAC SHA-256, secret of at least 32 bytes
    HS384 = 2  #: HMAC SHA-384, secret of at least 48 bytes
    HS512 = 3  #: HMAC SHA-512, secret of at least 64 bytes
    RS256 = 4  #: RSASSA-PKCS1-v1_5 SHA-256, RSA key of 2048..8192 bits
    ES256 = 5  #: ECDSA P-256 SHA-256

    @classmethod
    def from_name(cls, name: str) -> "Algorithm":
        """The algorithm named `name` ("RS256"; case-sensitive). JWTError
        (CC_ERR_JWT_ALG) for unknown names, "none" included."""
        if not isinstance(name, str):
            raise TypeError(f"name must be str, not {type(name).__name__}")
        out = ctypes.c_int(0)
        check(_lib.lib().cc_jwt_alg_from_name(
            name.encode("utf-8"), ctypes.byref(out)))
        return cls(out.value)

    @property
    def jws_name(self) -> str:
        """The library's name for the algorithm ("HS256")."""
        return str(_lib.lib().cc_jwt_alg_name(self.value).decode())


def _alg(alg: Union[Algorithm, str]) -> Algorithm:
    if isinstance(alg, str):
        return Algorithm.from_name(alg)
    return Algorithm(alg)


@dataclass(frozen=True)
class Claims:
    """What a verified token says: its subject (the user id), `exp` and `iat`
    (Unix seconds; `iat` None when the token has none)."""

    sub: str
    exp: int
    iat: Optional[int]


class Verifier(Closeable):
    """Verifies tokens signed with one algorithm and key (jwt.h lists the checks,
    in order). Immutable once made: any number of threads may call verify() at
    once.

    `key`: for HS256/384/512 the shared secret (bytes, or str taken as UTF-8);
    for RS256 and ES256 one PEM public key ("-----BEGIN PUBLIC KEY-----").
    `issuer` / `audience`: required `iss` / `aud` values (None: not required;
    without an audience, tokens carrying `aud` are refused).
    `leeway`: allowed clock skew, whole seconds (0..86400).
    `max_token_len`: longest token accepted, bytes (default 8192).
    `clock`: a callable returning Unix time in seconds (like time.time); None
    uses the system clock. It runs during verify(); what it raises, verify()
    raises.
    `fallback`: a second Verifier tried when this one refuses a token for its
    algorithm or signature (key rotation). It stays usable by this verifier
    even if closed first.

    Errors: JWTError (CC_ERR_JWT_KEY) for an unusable key, ChatcoreError
    (CC_ERR_INVALID) for an out-of-range setting."""

    def __init__(self, alg: Union[Algorithm, str], key: Union[str, BytesLike], *,
                 issuer: Optional[str] = None, audience: Optional[str] = None,
                 leeway: int = 0, max_token_len: Optional[int] = None,
                 clock: Optional[Callable[[], float]] = None,
                 fallback: Optional["Verifier"] = None) -> None:
        lib = _lib.lib()
        self.algorithm = _alg(alg)
        keyb = _lib.c_bytes(key, "key")
        if not isinstance(leeway, int) or isinstance(leeway, bool):
            raise TypeError("leeway must be an int (seconds)")
        if leeway < 0 or leeway >= 1 << 32:
            raise ChatcoreError(ErrorCode.INVALID, f"leeway {leeway} out of range")
        if max_token_len is not None and (not isinstance(max_token_len, int)
                                          or max_token_len < 0):
            raise TypeError("max_token_len must be a non-negative int")
        c_clock = self._make_clock(clock) if clock is not None else None
        fallback_handle = None
        opt = ctypes.c_void_p()
        check(lib.cc_jwt_options_new(ctypes.byref(opt)))
        try:
            if self.algorithm in (Algorithm.RS256, Algorithm.ES256):
                check(lib.cc_jwt_options_set_public_key_pem(
                    opt, self.algorithm, keyb, len(keyb)))
            else:
                check(lib.cc_jwt_options_set_hmac_key(
                    opt, self.algorithm, keyb, len(keyb)))
            for value, setter, what in ((issuer, lib.cc_jwt_options_set_issuer,
                                         "issuer"),
                                        (audience, lib.cc_jwt_options_set_audience,
                                         "audience")):
                if value is not None:
                    b = _lib.c_bytes(value, what)
                    check(setter(opt, b, len(b)), f"{what} {value!r}")
            check(lib.cc_jwt_options_set_leeway_seconds(opt, leeway),
                  f"leeway {leeway}")
            if max_token_len is not None:
                check(lib.cc_jwt_options_set_max_token_len(
                    opt, max_token_len), f"max_token_len {max_token_len}")
            if c_clock is not None:
                check(lib.cc_jwt_options_set_clock(opt, c_clock, None))
            if fallback is not None:
                if not isinstance(fallback, Verifier):
                    raise TypeError("fallback must be a Verifier")
                if fallback._handle is None:
                    raise ClosedError(ErrorCode.CLOSED, "fallback is closed")
                fallback_handle = fallback._handle
                # Held until this verifier is freed: the C verifier borrows it.
                fb_ptr = fallback_handle.enter()
                try:
                    check(lib.cc_jwt_options_set_fallback(opt, fb_ptr))
                except BaseException:
                    fallback_handle.leave()
                    fallback_handle = None
                    raise
            out = ctypes.c_void_p()
            try:
                check(lib.cc_jwt_verifier_new(ctypes.byref(out), opt, None))
            except BaseException:
                if fallback_handle is not None:
                    fallback_handle.leave()
                raise
        finally:
            lib.cc_jwt_options_free(opt)

        def free(ptr: int, lib: Any = lib,
                 fallback_handle: Optional[Handle] = fallback_handle) -> None:
            lib.cc_jwt_verifier_free(ptr)
            if fallback_handle is not None:
                fallback_handle.leave()

        self._handle = Handle(out.value, free, "Verifier", keep=c_clock)

    @staticmethod
    def _make_clock(clock: Callable[[], float]) -> Any:
        if not callable(clock):
            raise TypeError("clock must be callable")

        def tick(_user_data: Any) -> int:
            try:
                return seconds_to_ns(clock(), "clock")
            except BaseException as exc:  # noqa: BLE001 - re-raised by verify()
                park(exc)
                return 0

        return _lib.CLOCK_FN(tick)

    def verify(self, token: Union[str, BytesLike]) -> Claims:
        """Checks `token` (compact JWS, str or bytes) and returns its claims.
        Raises JWTError carrying the first failed check's code (JWT_MALFORMED,
        JWT_ALG, JWT_SIGNATURE, JWT_EXPIRED, JWT_NOT_YET_VALID, JWT_CLAIM,
        JWT_ISSUER, JWT_AUDIENCE), ChatcoreError TOO_LARGE over the length cap,
        ClosedError after close()."""
        tok = _lib.c_bytes(token, "token")
        claims = _lib.CJwtClaims()
        with self._use() as ptr:
            clear_parked()
            rc = _lib.lib().cc_jwt_verify(
                ptr, tok, len(tok), ctypes.byref(claims))
        raise_parked()
        check(rc)
        return Claims(sub=claims.sub[:claims.sub_len].decode("utf-8"), exp=claims.exp,
                      iat=None if claims.iat < 0 else claims.iat)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<chatcore.jwt.Verifier {self.algorithm.name} {state}>"


def sign_hmac(alg: Union[Algorithm, str], key: Union[str, BytesLike],
              claims: Union[Mapping[str, Any], str, BytesLike]) -> str:
    """Mints a token signed with an HMAC algorithm, for development logins and
    tests. `claims` is a mapping (serialized as compact JSON) or the JSON text
    itself; include `exp` and `sub` for a token Verifier accepts. Raises
    JWTError (JWT_KEY) for a bad key, ChatcoreError (INVALID) for a non-HMAC
    algorithm or claims that are not a JSON object."""
    algorithm = _alg(alg)
    keyb = _lib.c_bytes(key, "key")
    if isinstance(claims, Mapping):
        body = json.dumps(dict(claims), separators=(",", ":")).encode("utf-8")
    else:
        body = _lib.c_bytes(claims, "claims")
    lib = _lib.lib()
    need = ctypes.c_size_t(0)
    check(_measure(lib, algorithm, keyb, body, need))
    buf = ctypes.create_string_buffer(need.value + 1)
    check(lib.cc_jwt_sign_hmac(
        algorithm, keyb, len(keyb), body, len(body), buf, len(buf), ctypes.byref(need)))
    return buf.raw[:need.value].decode("ascii")


def _measure(lib: Any, alg: Algorithm, key: bytes, body: bytes,
             need: ctypes.c_size_t) -> int:
    rc = lib.cc_jwt_sign_hmac(alg, key, len(key), body, len(body), None, 0,
                              ctypes.byref(need))
    # Measuring reports TOO_LARGE with the length set; other errors are real.
    return 0 if rc == ErrorCode.TOO_LARGE and need.value > 0 else int(rc)
