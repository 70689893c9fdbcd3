"""Errors and version: the exception classes, the code table against the
library's, and the version check."""

import os
import subprocess
import sys

import pytest

import chatcore
from chatcore import ErrorCode, errors
from chatcore._lib import VersionInfo, check_version


def test_error_codes_match_the_library_table():
    for code in ErrorCode:
        assert chatcore.err_name(code) == code.name
    # Every code the library names is one the package knows.
    for value in range(-1, -1000, -1):
        name = chatcore.err_name(value)
        if name != "UNKNOWN":
            assert ErrorCode(value).name == name
    assert chatcore.err_name(-10) == "UNKNOWN"  # retired, never reused


def test_strerror_and_fatal():
    assert chatcore.strerror(ErrorCode.JWT_EXPIRED) == "token expired"
    assert chatcore.strerror(12345) == "unknown error"
    assert chatcore.is_fatal(ErrorCode.FATAL)
    assert chatcore.is_fatal(ErrorCode.INTERNAL)
    assert not chatcore.is_fatal(ErrorCode.INVALID)
    assert not chatcore.is_fatal(0)


def test_exception_carries_name_and_message():
    exc = errors.error(ErrorCode.PROTO_TYPE, "sendMessage.chatId: expected a string")
    assert isinstance(exc, chatcore.ProtocolError)
    assert isinstance(exc, chatcore.ChatcoreError)
    assert exc.code == -22 and exc.name == "PROTO_TYPE"
    assert exc.error_code is ErrorCode.PROTO_TYPE
    assert exc.message == "wrong type for protocol field"
    assert str(exc) == ("CC_ERR_PROTO_TYPE: wrong type for protocol field: "
                        "sendMessage.chatId: expected a string")
    assert str(errors.error(ErrorCode.NOMEM)) == "CC_ERR_NOMEM: out of memory"
    assert errors.error(-999).error_code is None
    assert errors.error(-999).name == "UNKNOWN"


@pytest.mark.parametrize("code,cls", [
    (ErrorCode.JWT_MALFORMED, chatcore.JWTError),
    (ErrorCode.JWT_KEY, chatcore.JWTError),
    (ErrorCode.PROTO, chatcore.ProtocolError),
    (ErrorCode.PROTO_UNKNOWN, chatcore.ProtocolError),
    (ErrorCode.RATE_LIMITED, chatcore.RateLimitedError),
    (ErrorCode.CLOSED, chatcore.ClosedError),
    (ErrorCode.INVALID, chatcore.ChatcoreError),
    (ErrorCode.IO, chatcore.ChatcoreError),
])
def test_error_subclasses(code, cls):
    assert type(errors.error(code)) is cls
    with pytest.raises(cls):
        errors.check(code)
    assert errors.check(0) == 0 and errors.check(1) == 1


def test_version():
    v = chatcore.version()
    assert v.age >= 1
    assert (v.major, v.minor) in chatcore.SUPPORTED_VERSIONS
    assert v.version == f"{v.major}.{v.minor}.{v.patch}"
    assert v.protocol == chatcore.protocol.PROTOCOL_NAME
    assert chatcore.load_library() == v  # loaded once


def test_version_check_refuses_what_it_does_not_know():
    ok = VersionInfo(0, 1, 7, "0.1.7", "chatcore.v1", 1)
    assert check_version(ok) is ok
    for bad in (ok._replace(minor=2, version="0.2.0"),
                ok._replace(major=1, minor=0, version="1.0.0"),
                ok._replace(age=0)):
        with pytest.raises(chatcore.UnsupportedLibraryError):
            check_version(bad)


def test_second_library_refused(tmp_path):
    other = tmp_path / "libchatcore.so.1"
    other.write_bytes(b"")
    with pytest.raises(chatcore.LibraryError, match="already loaded"):
        chatcore.load_library(str(other))
    # The same library again is fine.
    assert chatcore.load_library(chatcore.library_path()) == chatcore.version()


def run_python(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True,
                          text=True, timeout=60)


def test_missing_library_is_a_clear_error(tmp_path):
    res = run_python("import chatcore\n"
                     "try:\n"
                     "    chatcore.version()\n"
                     "except chatcore.LibraryError as e:\n"
                     "    print('LibraryError', e)\n",
                     CHATCORE_LIBRARY=str(tmp_path / "nope.so"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("LibraryError")
    assert "nope.so" in res.stdout and "CHATCORE_LIBRARY" in res.stdout


def test_not_a_library_is_a_clear_error(tmp_path):
    fake = tmp_path / "libchatcore.so.1"
    fake.write_text("not an ELF file")
    res = run_python("import chatcore\n"
                     "try:\n"
                     "    chatcore.version()\n"
                     "except chatcore.LibraryError as e:\n"
                     "    print('LibraryError', e)\n",
                     CHATCORE_LIBRARY=str(fake))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("LibraryError") and "cannot load" in res.stdout
