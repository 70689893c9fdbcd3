"""Fixtures for the end-to-end test: a chatcore-server with --dev-login on a private
loopback port and SQLite in a temporary directory, and headless Chromium sessions
(Debian's chromium + chromium-driver, driven with python3-selenium) that use the
browser client the server serves at /.

Every wait is bounded polling (wait_until); nothing sleeps for a fixed time."""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECRET = "e2e-secret-0123456789abcdef0123456789"
WAIT_S = 20.0 if os.environ.get("CHATCORE_SANITIZE", "none") not in ("", "none") else 15.0


def wait_until(check, what, timeout=WAIT_S, interval=0.05):
    """Polls check() until it returns a truthy value (returned) or `timeout`
    passes (AssertionError naming `what` and the last value seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
        except AssertionError:
            raise
        except Exception as err:  # a page in the middle of a redraw, say
            last = err
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}; "
                                 f"last seen: {last!r}")
        time.sleep(interval)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChatServer:
    """chatcore-server on a fixed port and database, so it can be killed and
    started again in the same place."""

    def __init__(self, binary, workdir):
        self.binary = binary
        self.port = free_port()
        self.db = os.path.join(workdir, "chat.db")
        self.log_path = os.path.join(workdir, "server.log")
        self.proc = None

    @property
    def base(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        args = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--jwt-secret", SECRET,
                "--dev-login", "--db", self.db]
        with open(self.log_path, "ab") as log:
            log.write(("---- " + " ".join(args) + "\n").encode())
            log.flush()
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

        def listening():
            if self.proc.poll() is not None:
                raise AssertionError("chatcore-server exited: " + self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_until(listening, "chatcore-server to listen")

    def kill(self):
        """SIGKILL: no drain, no goodbye to the clients."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-8000:]
        except OSError:
            return ""

    def http(self, method, path, body=None, headers=None):
        """(status, headers, body) of one plain HTTP request."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.headers, err.read()


@pytest.fixture
def server(tmp_path):
    binary = os.environ.get("CHATCORE_SERVER")
    if not binary:
        pytest.exit("CHATCORE_SERVER must point at the chatcore-server binary", 2)
    s = ChatServer(binary, str(tmp_path))
    s.start()
    yield s
    running = s.proc.poll() is None  # not if the test failed while it was killed
    s.stop()
    log = s.output()
    print("---- server log ----\n" + log)
    # What the browsers made the server do must not trip it up (nor, in the
    # sanitizer build, ASan or UBSan).
    if running:
        assert s.proc.returncode == 0, f"chatcore-server exited with {s.proc.returncode}"
    for marker in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
        assert marker not in log, f"chatcore-server: {marker} (see the server log)"


def chromium_or_skip():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian packages: chromium "
                    "chromium-driver python3-selenium; tests/run.sh installs them)")
    if not os.path.exists(CHROMEDRIVER):
        pytest.fail(f"{CHROMIUM} is installed but {CHROMEDRIVER} is not: "
                    "apt-get install chromium-driver")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.fail("chromium is installed but python3-selenium is not: "
                    "apt-get install python3-selenium")


class Browser:
    """One headless Chromium with its own profile: one user's browser."""

    def __init__(self, name, base_url):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.name = name
        self.base_url = base_url
        self.profile = tempfile.mkdtemp(prefix=f"chatcore-e2e-{name}-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--no-first-run", "--disable-dev-shm-usage",
                    # Timers of a page that is not in front must keep running.
                    "--disable-background-timer-throttling",
                    "--disable-renderer-backgrounding",
                    "--window-size=1200,800", f"--user-data-dir={self.profile}"):
            opts.add_argument(arg)
        # The console and the WebSocket frames, for the report when a test fails.
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        self.driver.set_page_load_timeout(30)
        self.driver.set_script_timeout(10)
        self.frames = []
        self.console = []
        self.ws_urls = []  # every WebSocket the page opened

    # ---- page access ----

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def el(self, testid):
        return self.driver.find_element("css selector", f'[data-testid="{testid}"]')

    def text(self, testid):
        return self.js('const e = document.querySelector(`[data-testid="${arguments[0]}"]`);'
                       'return e ? e.textContent : null;', testid)

    def type_into(self, testid, text):
        field = self.el(testid)
        field.clear()
        field.send_keys(text)

    def click(self, testid):
        self.el(testid).click()

    def status(self):
        return self.js('return document.getElementById("conn-status").dataset.state;')

    def chat_items(self):
        """{chatId: {"name", "unread"}} of the chat list."""
        return self.js("""
            const out = {};
            for (const li of document.querySelectorAll('[data-testid="chat-item"]')) {
              const badge = li.querySelector('[data-testid="unread-badge"]');
              out[li.dataset.chatId] = {
                name: li.querySelector('[data-testid="chat-name"]').textContent,
                unread: badge ? Number(badge.textContent) : 0,
                presence: li.querySelector('.dot')?.dataset.presence ?? null,
              };
            }
            return out;""")

    def messages(self):
        """[(sender, text, state)] of the open chat, in order."""
        rows = self.js("""
            return [...document.querySelectorAll('[data-testid="message"]')].map(li => [
              li.dataset.sender, li.querySelector('[data-testid="message-text"]').textContent,
              li.dataset.state]);""")
        return [tuple(r) for r in rows]

    def texts(self):
        return [t for _, t, _ in self.messages()]

    # ---- flows ----

    def open(self):
        self.driver.get(self.base_url + "/")

    def login(self, user):
        self.open()
        self.type_into("login-user", user)
        self.click("login-submit")
        wait_until(lambda: self.text("me") == user, f"{self.name}: logged in as {user}")
        self.wait_connected()

    def wait_connected(self):
        wait_until(lambda: self.status() == "connected", f"{self.name}: connected")

    def open_direct(self, peer):
        self.type_into("peer-input", peer)
        self.click("open-direct")
        wait_until(lambda: self.text("chat-title") == peer and self.js(
            'return !document.getElementById("chat-open").hidden;'),
            f"{self.name}: the chat with {peer} open")

    def open_chat(self, chat_id):
        """Clicks the chat in the list (once it is there)."""
        sel = f'[data-testid="chat-item"][data-chat-id="{chat_id}"]'
        wait_until(lambda: self.js("const e = document.querySelector(arguments[0]);"
                                   "if (e) e.click(); return !!e;", sel),
                   f"{self.name}: {chat_id} in the chat list")
        wait_until(lambda: self.js('return document.querySelector('
                                   '\'[data-testid="chat-item"].active\')?.dataset.chatId;')
                   == chat_id, f"{self.name}: {chat_id} open")

    def system_entries(self):
        return self.js('return [...document.querySelectorAll(\'[data-testid="system-entry"]\')]'
                       '.map(e => e.textContent);')

    def first_entry(self):
        """data-testid of the first entry shown ("message" or "system-entry")."""
        return self.js('return document.querySelector("#message-list > li")?.dataset.testid;')

    def send(self, text):
        self.type_into("composer-input", text)
        self.click("composer-send")

    def close_tab(self):
        """Closes the page (the browser stays, on a blank tab)."""
        page = self.driver.current_window_handle
        self.driver.switch_to.new_window("tab")
        blank = self.driver.current_window_handle
        self.collect_logs()
        self.driver.switch_to.window(page)
        self.driver.close()
        self.driver.switch_to.window(blank)

    # ---- diagnostics ----

    def collect_logs(self):
        try:
            self.console += [e["message"] for e in self.driver.get_log("browser")]
            for entry in self.driver.get_log("performance"):
                msg = json.loads(entry["message"])["message"]
                method = msg.get("method", "")
                if method in ("Network.webSocketFrameSent", "Network.webSocketFrameReceived"):
                    arrow = "->" if method.endswith("Sent") else "<-"
                    self.frames.append(f"{arrow} {msg['params']['response']['payloadData']}")
                elif method in ("Network.webSocketClosed", "Network.webSocketCreated",
                                "Network.webSocketHandshakeResponseReceived"):
                    self.frames.append(f"-- {method} {json.dumps(msg['params'])[:300]}")
                if method == "Network.webSocketCreated":
                    self.ws_urls.append(msg["params"]["url"])
        except Exception as err:  # the browser may be gone already
            self.console.append(f"(logs unavailable: {err})")

    def websocket_urls(self):
        """The URL of every WebSocket the page opened so far."""
        self.collect_logs()
        return list(self.ws_urls)

    def page_state(self):
        try:
            return json.dumps({"status": self.status(), "chat": self.text("chat-title"),
                               "messages": self.messages(), "chats": self.chat_items(),
                               "typing": self.text("typing"), "readBy": self.text("read-by"),
                               "presence": self.text("peer-presence")}, indent=1)
        except Exception as err:
            return f"(page unavailable: {err})"

    def report(self):
        state = self.page_state()
        self.collect_logs()
        return (f"---- {self.name}: page ----\n{state}\n"
                f"---- {self.name}: console ----\n" + "\n".join(self.console[-100:]) +
                f"\n---- {self.name}: WebSocket frames (last 150) ----\n" +
                "\n".join(self.frames[-150:]))

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture
def browsers(server):
    """make(name) -> a Browser on the server; all quit at the end, their console
    and WebSocket frames printed (pytest shows them when the test fails)."""
    chromium_or_skip()
    made = []

    def make(name):
        b = Browser(name, server.base)
        made.append(b)
        return b

    yield make
    for b in made:
        print(b.report())
        b.quit()
