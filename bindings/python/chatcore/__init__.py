"""Python bindings of libchatcore, over the installed libchatcore.so through
ctypes (no compiler needed): errors and version, JWT verification, the rate
limiter, the wire protocol codec, and an embedded chat server with Python
hooks (chatcore.Server). docs/bindings-python.md tells how to
install and use it.

    >>> import chatcore
    >>> chatcore.version().protocol
    'chatcore.v1'
"""

from __future__ import annotations

from . import jwt, protocol, ratelimit, server
from ._lib import (
    SUPPORTED_VERSIONS,
    LibraryError,
    UnsupportedLibraryError,
    VersionInfo,
    library_path,
    load_library,
)
from .server import Draft, Reject, Server, StoredEntry
from .errors import (
    ChatcoreError,
    ClosedError,
    ErrorCode,
    JWTError,
    ProtocolError,
    RateLimitedError,
    err_name,
    is_fatal,
    strerror,
)

__all__ = [
    "ChatcoreError", "ClosedError", "Draft", "ErrorCode", "JWTError", "LibraryError",
    "ProtocolError", "RateLimitedError", "Reject", "SUPPORTED_VERSIONS", "Server",
    "StoredEntry", "UnsupportedLibraryError", "VersionInfo", "err_name", "is_fatal",
    "jwt", "library_path", "load_library", "protocol", "ratelimit", "server",
    "strerror", "version",
]


def version() -> VersionInfo:
    """The loaded library's version (loading it if needed)."""
    return load_library()
