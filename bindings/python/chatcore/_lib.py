"""Finding, loading and describing libchatcore.so through ctypes.

The library is loaded on first use, from the first of:
  1. the path given to load_library();
  2. the CHATCORE_LIBRARY environment variable (a path to the .so);
  3. the libdir pkg-config reports for `chatcore` (`$PKG_CONFIG`, default
     `pkg-config`), as libchatcore.so.<SOVERSION>;
  4. the system's loader (ld.so.cache, LD_LIBRARY_PATH) by soname.
Then cc_version() must report a version this package supports."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_uint8,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Any, NamedTuple, Optional

# The ABI this package is written against: the soname's number, and the
# library versions (major, minor) whose API it knows.
SOVERSION = 1
SUPPORTED_VERSIONS = ((0, 1),)
# cc_version_info fields this package reads were all present in age 1.
MIN_VERSION_AGE = 1


class LibraryError(OSError):
    """libchatcore could not be found or loaded, or its version is not supported."""


class UnsupportedLibraryError(LibraryError):
    """A libchatcore was loaded, but not one this package supports (its version,
    or a function missing)."""


class VersionInfo(NamedTuple):
    """What cc_version() reports about the loaded library."""

    major: int
    minor: int
    patch: int
    version: str  #: "0.1.0"
    protocol: str  #: wire protocol, "chatcore.v1"
    age: int  #: the C struct's own version


class _CVersionInfo(Structure):
    _fields_ = [
        ("age", c_int),
        ("version_num", c_uint32),
        ("version_str", c_char_p),
        ("protocol_str", c_char_p),
    ]


class CJwtClaims(Structure):
    _fields_ = [
        ("exp", c_int64),
        ("iat", c_int64),
        ("sub_len", c_size_t),
        ("sub", c_char * 257),
    ]


# uint64_t (*cc_clock_fn)(void *user_data)
CLOCK_FN = CFUNCTYPE(c_uint64, c_void_p)


class CStr(Structure):
    _fields_ = [("ptr", c_void_p), ("len", c_size_t)]


class CMessageDraft(Structure):
    _fields_ = [
        ("version", c_int),
        ("kind", c_int),
        ("chat_id", CStr),
        ("sender_id", CStr),
        ("client_msg_id", CStr),
        ("text", CStr),
        ("payload", CStr),
        ("target_seq", c_uint64),
    ]


class CEntry(Structure):
    _fields_ = [
        ("kind", c_int),
        ("chat_id", CStr),
        ("seq", c_uint64),
        ("sender_id", CStr),
        ("client_msg_id", CStr),
        ("text", CStr),
        ("payload", CStr),
        ("at_ms", c_int64),
        ("target_seq", c_uint64),
        ("added", c_void_p),
        ("n_added", c_size_t),
        ("removed", c_void_p),
        ("n_removed", c_size_t),
        ("edited_at_ms", c_int64),
        ("deleted", c_int),
        ("updated_seq", c_uint64),
        ("ext", c_void_p),
    ]


# int (*cc_token_verify_fn)(void *, const char *token, size_t, cc_jwt_claims *)
TOKEN_VERIFY_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_size_t, POINTER(CJwtClaims))
# void (*cc_message_hook_fn)(void *, const cc_message_draft *, cc_hook_reply *)
MESSAGE_HOOK_FN = CFUNCTYPE(None, c_void_p, POINTER(CMessageDraft), c_void_p)
# void (*cc_stored_hook_fn)(void *, const cc_entry *)
STORED_HOOK_FN = CFUNCTYPE(None, c_void_p, POINTER(CEntry))

_u8p = POINTER(c_uint8)
_vp = c_void_p

# name: (restype, argtypes). Every function this package calls, and only those.
_PROTOTYPES = {
    "cc_version": (POINTER(_CVersionInfo), []),
    "cc_strerror": (c_char_p, [c_int]),
    "cc_err_name": (c_char_p, [c_int]),
    "cc_err_is_fatal": (c_int, [c_int]),
    # jwt.h
    "cc_jwt_alg_from_name": (c_int, [c_char_p, POINTER(c_int)]),
    "cc_jwt_alg_name": (c_char_p, [c_int]),
    "cc_jwt_options_new": (c_int, [POINTER(_vp)]),
    "cc_jwt_options_free": (None, [_vp]),
    "cc_jwt_options_set_hmac_key": (c_int, [_vp, c_int, c_char_p, c_size_t]),
    "cc_jwt_options_set_public_key_pem": (c_int, [_vp, c_int, c_char_p, c_size_t]),
    "cc_jwt_options_set_leeway_seconds": (c_int, [_vp, c_uint32]),
    "cc_jwt_options_set_issuer": (c_int, [_vp, c_char_p, c_size_t]),
    "cc_jwt_options_set_audience": (c_int, [_vp, c_char_p, c_size_t]),
    "cc_jwt_options_set_clock": (c_int, [_vp, CLOCK_FN, _vp]),
    "cc_jwt_options_set_max_token_len": (c_int, [_vp, c_size_t]),
    "cc_jwt_options_set_fallback": (c_int, [_vp, _vp]),
    "cc_jwt_verifier_new": (c_int, [POINTER(_vp), _vp, _vp]),
    "cc_jwt_verifier_free": (None, [_vp]),
    "cc_jwt_verifier_alg": (c_int, [_vp]),
    "cc_jwt_verify": (c_int, [_vp, c_char_p, c_size_t, POINTER(CJwtClaims)]),
    "cc_jwt_sign_hmac": (
        c_int,
        [c_int, c_char_p, c_size_t, c_char_p, c_size_t, c_char_p, c_size_t,
         POINTER(c_size_t)],
    ),
    # ratelimit.h
    "cc_ratelimit_options_new": (c_int, [POINTER(_vp)]),
    "cc_ratelimit_options_free": (None, [_vp]),
    "cc_ratelimit_options_set_rate": (c_int, [_vp, c_uint64, c_uint64]),
    "cc_ratelimit_options_set_burst": (c_int, [_vp, c_uint32]),
    "cc_ratelimit_options_set_max_keys": (c_int, [_vp, c_size_t]),
    "cc_ratelimit_options_set_clock": (c_int, [_vp, CLOCK_FN, _vp]),
    "cc_ratelimit_new": (c_int, [POINTER(_vp), _vp, _vp]),
    "cc_ratelimit_free": (None, [_vp]),
    "cc_ratelimit_take": (c_int, [_vp, c_char_p, c_size_t, c_uint32, POINTER(c_uint64)]),
    "cc_ratelimit_size": (c_size_t, [_vp]),
    # buf.h
    "cc_buf_unref": (None, [_vp]),
    "cc_buf_cdata": (_vp, [_vp]),
    "cc_buf_len": (c_size_t, [_vp]),
    # protocol.h
    "cc_protocol_subprotocol": (c_char_p, [c_int]),
    "cc_protocol_encoding_from_subprotocol": (c_int, [c_char_p, c_size_t, POINTER(c_int)]),
    "cc_protocol_select_subprotocol": (c_int, [c_char_p, c_size_t, POINTER(c_int)]),
    "cc_protocol_limits_new": (c_int, [POINTER(_vp), c_int, _vp]),
    "cc_protocol_limits_free": (None, [_vp]),
    "cc_protocol_limits_set_max_frame": (c_int, [_vp, c_size_t]),
    "cc_protocol_limits_set_max_field": (c_int, [_vp, c_size_t]),
    "cc_protocol_limits_set_max_repeated": (c_int, [_vp, c_size_t]),
    "cc_protocol_limits_set_max_depth": (c_int, [_vp, c_uint32]),
    "cc_protocol_limits_set_allow_unknown": (c_int, [_vp, c_int]),
    "cc_protocol_validate": (
        c_int, [c_int, c_int, c_char_p, c_size_t, _vp, c_char_p, c_size_t]),
    "cc_protocol_transcode": (
        c_int,
        [POINTER(_vp), c_int, c_int, c_char_p, c_size_t, c_int, _vp, _vp, c_char_p,
         c_size_t],
    ),
    "cc_protocol_check_user_id": (c_int, [c_char_p, c_size_t]),
    "cc_protocol_check_chat_id": (c_int, [c_char_p, c_size_t]),
    "cc_protocol_check_client_msg_id": (c_int, [c_char_p, c_size_t]),
    "cc_protocol_direct_chat_id": (
        c_int, [c_char_p, c_size_t, POINTER(c_size_t), c_char_p, c_size_t, c_char_p,
                c_size_t]),
    "cc_protocol_parse_direct_chat_id": (
        c_int, [c_char_p, c_size_t, POINTER(_vp), POINTER(c_size_t), POINTER(_vp),
                POINTER(c_size_t)]),
    # server.h, and the message hook's verdicts (service.h)
    "cc_server_options_new": (c_int, [POINTER(_vp)]),
    "cc_server_options_free": (None, [_vp]),
    "cc_server_options_set_listen": (c_int, [_vp, c_char_p]),
    "cc_server_options_set_db": (c_int, [_vp, c_char_p]),
    "cc_server_options_set_jwt": (c_int, [_vp, _vp]),
    "cc_server_options_set_token_verifier": (c_int, [_vp, TOKEN_VERIFY_FN, _vp]),
    "cc_server_options_set_message_hook": (c_int, [_vp, MESSAGE_HOOK_FN, _vp]),
    "cc_server_options_set_stored_hook": (c_int, [_vp, STORED_HOOK_FN, _vp]),
    "cc_server_options_set_drain_timeout": (c_int, [_vp, c_uint64]),
    "cc_server_start": (c_int, [POINTER(_vp), _vp, _vp, c_char_p, c_size_t]),
    "cc_server_port": (c_int, [_vp]),
    "cc_server_stop": (c_int, [_vp]),
    "cc_hook_accept": (None, [_vp]),
    "cc_hook_reject": (c_int, [_vp, c_int, c_char_p]),
    "cc_hook_rewrite": (c_int, [_vp, c_char_p, c_size_t]),
    "cc_protocol_error_code_for": (c_int, [c_int]),
    "cc_protocol_error_code_name": (c_char_p, [c_int]),
}


class Library:
    """The loaded library: its functions as attributes (cc_version, ...)."""

    def __init__(self, path: str, dll: ctypes.CDLL) -> None:
        self.path = path
        self.dll = dll
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(dll, name)
            except AttributeError as exc:
                raise UnsupportedLibraryError(f"{path}: no symbol {name}: not a libchatcore "
                                   "this package supports") from exc
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self.version = check_version(read_version(self))

    def __getattr__(self, name: str) -> Any:
        # Only reached for a name not set above: the functions are typed by
        # _PROTOTYPES, not by this class.
        raise AttributeError(f"libchatcore function {name} is not declared in _lib.py")


_lock = threading.Lock()
_loaded: Optional[Library] = None


def read_version(lib: Library) -> VersionInfo:
    info = lib.cc_version().contents
    num = info.version_num
    return VersionInfo(major=(num >> 16) & 0xFF, minor=(num >> 8) & 0xFF,
                       patch=num & 0xFF,
                       version=(info.version_str or b"").decode("utf-8", "replace"),
                       protocol=(info.protocol_str or b"").decode("utf-8", "replace"),
                       age=info.age)


def check_version(v: VersionInfo) -> VersionInfo:
    """Returns `v` if this package supports that library version, else raises
    UnsupportedLibraryError saying what it supports."""
    if v.age < MIN_VERSION_AGE:
        raise UnsupportedLibraryError(f"libchatcore reports cc_version_info age {v.age}; "
                           f"this package needs at least {MIN_VERSION_AGE}")
    if (v.major, v.minor) not in SUPPORTED_VERSIONS:
        wanted = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_VERSIONS)
        raise UnsupportedLibraryError(f"libchatcore {v.version} is not supported by this "
                           f"package (supported: {wanted})")
    return v


def _pkg_config_libdir() -> Optional[str]:
    exe = os.environ.get("PKG_CONFIG") or "pkg-config"
    if shutil.which(exe) is None:
        return None
    try:
        res = subprocess.run([exe, "--variable=libdir", "chatcore"], check=False,
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = res.stdout.strip()
    return libdir if res.returncode == 0 and libdir else None


def _candidates() -> list[tuple[str, str]]:
    """(path or soname, where it came from), in the order they are tried."""
    env = os.environ.get("CHATCORE_LIBRARY")
    if env:
        return [(env, "CHATCORE_LIBRARY")]
    out = []
    soname = f"libchatcore.so.{SOVERSION}"
    libdir = _pkg_config_libdir()
    if libdir:
        out.append((os.path.join(libdir, soname), "pkg-config"))
    out.append((soname, "the system loader"))
    return out


def _open(path: str) -> Library:
    try:
        dll = ctypes.CDLL(path)
    except OSError as exc:
        raise LibraryError(f"cannot load {path}: {exc}") from exc
    return Library(path, dll)


def load_library(path: Optional[str] = None) -> VersionInfo:
    """Loads libchatcore now (from `path` if given, else as the module docstring
    says) and returns its version. Calling it again after a successful load
    returns the loaded library's version; a different `path` then raises
    LibraryError, since one process holds one libchatcore."""
    global _loaded
    with _lock:
        if _loaded is not None:
            if path is not None and os.path.realpath(path) != os.path.realpath(
                    _loaded.path):
                raise LibraryError(f"libchatcore is already loaded from "
                                   f"{_loaded.path}")
            return _loaded.version
        if path is not None:
            _loaded = _open(path)
            return _loaded.version
        errors = []
        for cand, source in _candidates():
            if os.sep in cand and not os.path.exists(cand):
                errors.append(f"{cand} (from {source}): no such file")
                continue
            try:
                _loaded = _open(cand)
                return _loaded.version
            except UnsupportedLibraryError:
                raise  # a library that loaded but is unsupported is a clear answer
            except LibraryError as exc:
                errors.append(f"{cand} (from {source}): {exc}")
        raise LibraryError("libchatcore not found or unusable; set CHATCORE_LIBRARY "
                           "to its path or make `pkg-config chatcore` find it. "
                           "Tried: " + "; ".join(errors))


def lib() -> Library:
    """The loaded library, loading it on first use."""
    if _loaded is None:
        load_library()
    assert _loaded is not None
    return _loaded


def library_path() -> str:
    """Where the loaded library came from (loading it if needed)."""
    return lib().path


def c_bytes(value: object, what: str) -> bytes:
    """`value` as bytes: str is encoded as UTF-8, bytes-like objects are copied;
    anything else raises TypeError naming `what`."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be str or bytes-like, not {type(value).__name__}")
