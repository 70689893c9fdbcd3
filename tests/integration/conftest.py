"""Fixtures for the integration tests: a real chatcore-server on a private
loopback port, tokens minted with Debian's python3-jwt (an implementation nobody
here wrote), and raw sockets for what well-behaved clients never send."""
import itertools
import os
import socket
import subprocess
import tempfile
import time

import jwt
import pytest

SECRET = "integration-secret-0123456789abcdef"


def server_binary():
    path = os.environ.get("CHATCORE_SERVER")
    if not path:
        pytest.exit("CHATCORE_SERVER must point at the chatcore-server binary", 2)
    return os.path.abspath(path)


def free_port(host="127.0.0.1"):
    """A port nothing uses on `host`. One free on 127.0.0.1 may still be taken on
    0.0.0.0: test_10k_connections leaves thousands of sockets in TIME_WAIT on
    other 127/8 addresses for a minute after it ran."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def token(sub="alice", ttl=600, secret=SECRET, **claims):
    body = {"sub": sub, "exp": int(time.time()) + ttl}
    body.update(claims)
    return jwt.encode(body, secret, algorithm="HS256")


_pg_databases = itertools.count()


def _pg_database(port, keep):
    """A database made once for `keep` (its URI kept in that file, so that a
    restarted server finds the same chats)."""
    if os.path.exists(keep):
        with open(keep) as f:
            return f.read()
    name = f"it_{os.getpid()}_{next(_pg_databases)}"
    subprocess.run(["bash", os.environ["CHATCORE_TEST_PG_SCRIPT"], "psql", port,
                    f"CREATE DATABASE {name} OWNER chatcore"], check=True)
    uri = f"postgresql://chatcore:chatcore@127.0.0.1:{port}/{name}"
    with open(keep, "w") as f:
        f.write(uri)
    return uri


def db_args(tmpdir):
    """The database flags of a server whose data lives in `tmpdir`: --db with the
    file chat.db there, or, when the suite runs on PostgreSQL
    (tests/integration/with_postgres.sh), --db with a database made for
    `tmpdir`; with CHATCORE_TEST_PG_SERVERS=2, two databases standing for two
    servers, each holding half of the 64 logical partitions (--db-server)."""
    port = os.environ.get("CHATCORE_TEST_PG_PORT")
    if not port:
        return ["--db", os.path.join(tmpdir, "chat.db")]
    if os.environ.get("CHATCORE_TEST_PG_SERVERS", "1") == "2":
        return ["--db-server", "0-31=" + _pg_database(port, os.path.join(tmpdir, "pg-a")),
                "--db-server", "32-63=" + _pg_database(port, os.path.join(tmpdir, "pg-b"))]
    return ["--db", _pg_database(port, os.path.join(tmpdir, "pg-uri"))]


class Server:
    """A chatcore-server process; stops itself at the end of the test."""

    def __init__(self, *extra, env=None, scheme="ws"):
        self.port = free_port()
        self.scheme = scheme
        # Each server keeps its chats in its own temporary database.
        self.dir = tempfile.TemporaryDirectory(prefix="chatcore-it-")
        db = [] if {"--db", "--db-server"} & set(extra) else db_args(self.dir.name)
        args = [server_binary(), "--listen", f"127.0.0.1:{self.port}",
                "--jwt-secret", SECRET, *db, *extra]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env)
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited: " + self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("server did not start: " + self.output())

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self.port}/ws"

    def output(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def _server_factory():
    from chatclient import ServerFactory  # chatclient imports this module
    f = ServerFactory()
    yield f
    f.close()


# Servers on their own databases (chatclient.ServerFactory), stopped at the end,
# failing the test if one of them ended badly: one set per test module, and one
# per test.
servers = pytest.fixture(scope="module", name="servers")(_server_factory)
own_servers = pytest.fixture(name="own_servers")(_server_factory)


@pytest.fixture
def make_server():
    started = []

    def make(*extra, **kw):
        s = Server(*extra, **kw)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def raw_request(port, request: bytes, timeout=5.0) -> bytes:
    """Sends raw bytes, returns everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            chunks.append(data)
        return b"".join(chunks)


def upgrade_request(path="/ws", headers=None, key="dGhlIHNhbXBsZSBub25jZQ==",
                    version="13", tok=None):
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {key}",
             f"Sec-WebSocket-Version: {version}"]
    if tok:
        lines.append(f"Authorization: Bearer {tok}")
    lines += headers or []
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])
