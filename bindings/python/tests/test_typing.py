"""The package is typed: mypy --strict finds nothing in it, and a program using
it gets its types through py.typed (a wrong argument is reported)."""

import os
import subprocess
import sys

import pytest

import chatcore

pytest.importorskip("mypy", reason="Debian's python3-mypy is not installed")
PACKAGE = os.path.dirname(chatcore.__file__)


def mypy(*args, cwd):
    # The package's parent on MYPYPATH, so a program finds it as an installed
    # package would be found (with its py.typed).
    env = dict(os.environ, MYPYPATH=os.path.dirname(PACKAGE))
    return subprocess.run([sys.executable, "-m", "mypy", "--no-incremental",
                           "--cache-dir", os.devnull, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_py_typed_is_shipped():
    assert os.path.isfile(os.path.join(PACKAGE, "py.typed"))


def test_package_passes_mypy_strict(tmp_path):
    res = mypy("--strict", "-p", "chatcore", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_callers_get_the_types(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        "from chatcore.jwt import Claims, Verifier\n"
        "from chatcore.protocol import Encoding, FrameKind, decode\n"
        "def user(v: Verifier, token: str) -> str:\n"
        "    claims: Claims = v.verify(token)\n"
        "    return claims.sub\n"
        "def frame(data: bytes) -> dict:\n"
        "    return decode(data, FrameKind.CLIENT, Encoding.JSON)\n")
    res = mypy("--strict", "--allow-any-generics", str(good), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    bad = tmp_path / "bad.py"
    bad.write_text("from chatcore.ratelimit import RateLimiter\n"
                   "RateLimiter(events='ten')\n"
                   "n: str = RateLimiter().allow('k')\n")
    res = mypy(str(bad), cwd=tmp_path)
    assert res.returncode == 1
    assert 'incompatible type "str"; expected "Optional[int]"' in res.stdout
    assert 'expression has type "bool", variable has type "str"' in res.stdout
