"""Python bindings of libchatcore, over the installed libchatcore.so through
ctypes (no compiler needed): errors and version, JWT verification, the rate
limiter and the wire protocol codec. docs/bindings-python.md tells how to
install and use it.

    >>> import chatcore
    >>> chatcore.version().protocol
    'chatcore.v1'
"""

from __future__ import annotations

from . import jwt, protocol, ratelimit
from ._lib import (
    SUPPORTED_VERSIONS,
    LibraryError,
    UnsupportedLibraryError,
    VersionInfo,
    library_path,
    load_library,
)
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
    "ChatcoreError", "ClosedError", "ErrorCode", "JWTError", "LibraryError",
    "ProtocolError", "RateLimitedError", "SUPPORTED_VERSIONS",
    "UnsupportedLibraryError", "VersionInfo", "err_name", "is_fatal", "jwt",
    "library_path", "load_library", "protocol", "ratelimit", "strerror", "version",
]


def version() -> VersionInfo:
    """The loaded library's version (loading it if needed)."""
    return load_library()
