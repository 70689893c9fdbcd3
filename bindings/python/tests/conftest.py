"""Shared set-up of the chatcore binding tests.

Run by meson test twice: against the build tree (CHATCORE_LIBRARY names the
freshly built .so, PYTHONPATH the package's source) and, by
tests/check_installed.sh, against a `meson install` into a temporary prefix
(CHATCORE_EXPECT_PREFIX names it: the package and the library must then both
come from under it, found through pkg-config alone)."""

import os

import pytest

import chatcore


def pytest_report_header(config):
    return [f"chatcore package: {os.path.dirname(chatcore.__file__)}",
            f"libchatcore: {chatcore.library_path()} ({chatcore.version().version})"]


@pytest.fixture(scope="session", autouse=True)
def loaded_from_expected_place():
    prefix = os.environ.get("CHATCORE_EXPECT_PREFIX")
    if prefix:
        prefix = os.path.realpath(prefix) + os.sep
        assert os.path.realpath(chatcore.__file__).startswith(prefix)
        assert os.path.realpath(chatcore.library_path()).startswith(prefix)
        assert "CHATCORE_LIBRARY" not in os.environ
    elif "CHATCORE_LIBRARY" in os.environ:
        assert os.path.samefile(chatcore.library_path(), os.environ["CHATCORE_LIBRARY"])
