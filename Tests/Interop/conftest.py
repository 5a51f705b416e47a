"""Shared helpers for the integration and interop tests.

These tests drive the real `petrel` binary over loopback TCP. The binary is `$PETREL_BIN`, by default
`<repo>/.build/debug/petrel` (build it with `swift build`).

What is here:
- `PetrelServer`: writes a TOML configuration into its own folder, runs `petrel serve --config FILE`,
  waits until the port takes connections, and stops it (SIGTERM, then SIGKILL). It also runs the
  `petrel queue ...` commands against the same configuration and reads the queue database read-only.
- `SMTPConversation`: a raw SMTP client over a socket that sends exact bytes and reads whole
  (multi-line) replies, with every wait bounded by a timeout.
- Fixtures: `petrel_server` (a factory; every server it starts is stopped at teardown) and
  `default_server` (one server with the defaults, shared by a module).
"""

from __future__ import annotations

import errno
import json
import os
import re
import random
import signal
import socket
import sqlite3
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PETREL_BIN = os.environ.get("PETREL_BIN") or str(REPO_ROOT / ".build" / "debug" / "petrel")

HOSTNAME = "relay.test.invalid"
QUEUE_ID_PATTERN = re.compile(r"queued as ([0-9A-Z]{14})\b")
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 30.0
DEFAULT_IO_TIMEOUT = 10.0


def pytest_configure(config):
    if not os.access(PETREL_BIN, os.X_OK):
        raise pytest.UsageError(
            f"petrel binary not found at {PETREL_BIN}: run `swift build` or set PETREL_BIN"
        )


# ---------------------------------------------------------------------------------------------------
# Ports and configuration files


def ephemeral_port_floor() -> int:
    """The lowest port the kernel gives to outgoing connections (net.ipv4.ip_local_port_range)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago, chosen below the ephemeral range: a port the kernel hands out (port 0)
    can be taken by an outgoing connection's source port before the test binds it (seen: EADDRINUSE for a sink)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    floor = ephemeral_port_floor()
    for _ in range(200):
        port = random.randint(min(20000, floor - 1000), floor - 1)
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string for the ASCII text used here
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")


def toml_key(key: str) -> str:
    """A bare key when it is one (`max_recipients`), else a quoted one (`"routed.test"`)."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_document(config: dict) -> str:
    """Top-level scalars first, then one `[section]` per nested dict."""
    lines = []
    for key, value in config.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {toml_value(value)}")
    for section, table in config.items():
        if isinstance(table, dict):
            lines.append("")
            lines.append(f"[{section}]")
            for key, value in table.items():
                lines.append(f"{toml_key(key)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


def run_petrel(*args: str, cwd: Optional[Path] = None, timeout: float = CLI_TIMEOUT,
               env: Optional[dict] = None) -> subprocess.CompletedProcess:
    """Runs the petrel CLI and returns the completed process (text output). `env` replaces the environment."""
    for attempt in range(50):
        try:
            return subprocess.run(
                [PETREL_BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False, env=env
            )
        except OSError as error:
            # ETXTBSY: a concurrent `swift build` is relinking the binary; it is done in a moment.
            if error.errno != errno.ETXTBSY or attempt == 49:
                raise
            time.sleep(0.2)


# ---------------------------------------------------------------------------------------------------
# The server


class ServerStartError(RuntimeError):
    pass


class PetrelServer:
    """One `petrel serve` process with its own folder, configuration file and queue.

    `config` holds the sections to write (e.g. `{"inbound": {"max_recipients": 3}}`); the listen address,
    hostname and queue path are filled in unless given. The queue path is relative on purpose: the server
    must resolve it against the configuration file's folder, not its working directory.
    """

    def __init__(self, folder: Path, config: Optional[dict] = None, listen_host: str = "127.0.0.1"):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path = self.folder / "petrel.toml"
        self.log_path = self.folder / "petrel.log"
        self.listen_host = listen_host
        self.config = {key: (dict(value) if isinstance(value, dict) else value) for key, value in (config or {}).items()}
        self.config.setdefault("hostname", HOSTNAME)
        self.config.setdefault("queue", {}).setdefault("path", "data/queue.sqlite")
        # Tests that don't configure delivery inspect the queue: keep their mail in it. A smarthost where
        # nothing listens makes every attempt a quick deferral, retried an hour later.
        self.config.setdefault("delivery", {"smarthost": "127.0.0.1:9", "retry_min": "1h", "retry_max": "1h",
                                            "connect_timeout": "1s"})
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self.returncode: Optional[int] = None
        self._log_file = None

    # -- paths

    @property
    def queue_path(self) -> Path:
        path = Path(self.config["queue"]["path"])
        return path if path.is_absolute() else self.folder / path

    @property
    def spool_dir(self) -> Path:
        return self.queue_path.parent / "spool"

    @property
    def address(self) -> tuple:
        return (self.listen_host, self.port)

    # -- life cycle

    def write_config(self) -> None:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        inbound = self.config.setdefault("inbound", {})
        inbound["listen"] = [f"{host}:{self.port}"]
        self.config_path.write_text(toml_document(self.config))

    def start(self, keep_port: bool = False) -> "PetrelServer":
        """Starts the server and waits until it accepts connections. A port taken in the meantime by
        someone else is retried with another one (unless `keep_port`, for restarts on the same queue)."""
        attempts = 1 if keep_port else 3
        last_error = None
        for _ in range(attempts):
            if not keep_port or self.port is None:
                self.port = free_port(self.listen_host)
            self.write_config()
            try:
                self._spawn()
                self._wait_ready()
                return self
            except ServerStartError as error:
                last_error = error
                self.kill()
        raise last_error

    def _spawn(self) -> None:
        self._log_file = open(self.log_path, "ab")
        # The working directory is elsewhere on purpose (relative paths resolve against the config's folder).
        for attempt in range(50):
            try:
                self.process = subprocess.Popen(
                    [PETREL_BIN, "serve", "--config", str(self.config_path)],
                    cwd="/",
                    stdin=subprocess.DEVNULL,
                    stdout=self._log_file,
                    stderr=self._log_file,
                )
                break
            except OSError as error:
                # ETXTBSY: a concurrent `swift build` is relinking the binary; it is done in a moment.
                if error.errno != errno.ETXTBSY or attempt == 49:
                    raise
                time.sleep(0.2)
        self.returncode = None

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(
                    f"petrel serve exited with {self.process.returncode} before listening:\n{self.log_text()}"
                )
            try:
                with socket.create_connection(self.address, timeout=1.0) as probe:
                    # Read the greeting and say goodbye, so the probe is gone before a test counts connections.
                    probe.settimeout(5.0)
                    data = b""
                    while b"\r\n" not in data:
                        chunk = probe.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    if data.startswith(b"220"):
                        probe.sendall(b"QUIT\r\n")
                        while probe.recv(4096):
                            pass
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise ServerStartError(f"petrel serve did not listen on {self.address} within {STARTUP_TIMEOUT}s:\n{self.log_text()}")

    def send_signal(self, signum: int) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """Waits for the process to exit and returns its exit code (raises on timeout)."""
        self.returncode = self.process.wait(timeout=timeout)
        self._close_log()
        return self.returncode

    def stop(self) -> Optional[int]:
        """SIGTERM, then SIGKILL if it has not exited within the timeout. Returns the exit code."""
        if self.process is None:
            return self.returncode
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.process.returncode
        self._close_log()
        return self.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=STOP_TIMEOUT)
        self.returncode = self.process.returncode
        self._close_log()

    def restart(self) -> "PetrelServer":
        """Starts again on the same configuration, port and queue (after `stop` or `kill`)."""
        return self.start(keep_port=True)

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # -- the CLI against the same configuration

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_petrel(*args, "--config", str(self.config_path), cwd=Path("/"))

    def queue_show(self, queue_id: str) -> Optional[dict]:
        """`petrel queue show ID --json`: the message, or None when the CLI says it is not there (exit 1)."""
        result = self.cli("queue", "show", queue_id, "--json")
        if result.returncode == 1:
            return None
        assert result.returncode == 0, f"queue show failed ({result.returncode}): {result.stderr}"
        return json.loads(result.stdout)

    def queue_list(self) -> list:
        result = self.cli("queue", "list", "--json")
        assert result.returncode == 0, f"queue list failed ({result.returncode}): {result.stderr}"
        return json.loads(result.stdout)

    def queue_ids(self) -> set:
        return {message["queue_id"] for message in self.queue_list()}

    # -- the database, read-only

    def db(self) -> sqlite3.Connection:
        connection = sqlite3.connect(f"file:{self.queue_path}?mode=ro", uri=True, timeout=10)
        connection.row_factory = sqlite3.Row
        return connection

    def message_row(self, queue_id: str) -> sqlite3.Row:
        with self.db() as connection:
            row = connection.execute(
                """SELECT m.*, c.trace_headers, c.body FROM message m
                   JOIN message_content c ON c.message_id = m.id WHERE m.queue_id = ?""",
                (queue_id,),
            ).fetchone()
        assert row is not None, f"{queue_id} is not in the message table"
        return row

    def stored_parts(self, queue_id: str) -> tuple:
        """(trace_headers, text) as stored; the text comes from the spool file when there is one."""
        row = self.message_row(queue_id)
        if row["spool_file"] is not None:
            text = (self.spool_dir / row["spool_file"]).read_bytes()
        else:
            text = bytes(row["body"])
        return bytes(row["trace_headers"]), text

    def stored_text(self, queue_id: str) -> bytes:
        trace, text = self.stored_parts(queue_id)
        return trace + text


# ---------------------------------------------------------------------------------------------------
# A raw SMTP client


class ConnectionClosed(Exception):
    pass


@dataclass
class Reply:
    code: int
    lines: list = field(default_factory=list)

    @property
    def text(self) -> str:
        """All lines' text after the code, joined with newlines."""
        return "\n".join(self.lines)

    @property
    def enhanced(self) -> Optional[str]:
        """The enhanced status code of the first line (RFC 2034), if it has one."""
        match = re.match(r"(\d\.\d{1,3}\.\d{1,3})\b", self.lines[0] if self.lines else "")
        return match.group(1) if match else None

    def __str__(self) -> str:
        return " | ".join(f"{self.code} {line}" for line in self.lines) or str(self.code)


class SMTPConversation:
    """Speaks SMTP over a plain socket: exact bytes out, whole replies in. Every read has a timeout."""

    def __init__(self, address: tuple, source_address: Optional[tuple] = None, timeout: float = DEFAULT_IO_TIMEOUT,
                 read_greeting: bool = True):
        host, port = address
        self.sock = socket.create_connection((host, port), timeout=timeout, source_address=source_address)
        self.sock.settimeout(timeout)
        self.timeout = timeout
        self.buffer = b""
        self.greeting: Optional[Reply] = self.read_reply() if read_greeting else None

    # -- context manager

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- low level

    def send(self, data) -> None:
        """Sends exactly these bytes (a str is encoded as UTF-8); no CRLF is added."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionClosed(f"connection closed; unread: {self.buffer!r}")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def read_reply(self) -> Reply:
        """One whole reply: `ccc-text` lines up to the `ccc text` line."""
        lines = []
        while True:
            raw = self._read_line().decode("utf-8", errors="replace")
            match = re.match(r"^(\d{3})([ -]?)(.*)$", raw)
            assert match, f"not an SMTP reply line: {raw!r}"
            code, separator, text = int(match.group(1)), match.group(2), match.group(3)
            if lines:
                assert code == reply_code, f"code changed inside a multi-line reply: {raw!r}"
            reply_code = code
            lines.append(text)
            if separator != "-":
                return Reply(code, lines)

    def read_replies(self, count: int) -> list:
        return [self.read_reply() for _ in range(count)]

    def command(self, line: str) -> Reply:
        """Sends one command line (CRLF added) and reads its reply."""
        self.send(line + "\r\n")
        return self.read_reply()

    def expect(self, line: str, code: int, enhanced: Optional[str] = None) -> Reply:
        reply = self.command(line)
        shown = line if len(line) <= 100 else f"{line[:60]}...({len(line)} chars)"
        assert reply.code == code, f"{shown!r} -> {reply}, expected {code}"
        if enhanced is not None:
            assert reply.enhanced == enhanced, f"{shown!r} -> {reply}, expected {enhanced}"
        return reply

    def wait_for_close(self, timeout: float = 5.0) -> bytes:
        """Waits for the server to close the connection (EOF or a reset) and returns whatever it sent
        before closing (b"" when nothing). Fails when it is still open after `timeout`."""
        deadline = time.monotonic() + timeout
        received = self.buffer
        self.buffer = b""
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"the server did not close the connection within {timeout}s")
                self.sock.settimeout(remaining)
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    raise AssertionError(f"the server did not close the connection within {timeout}s") from None
                if not chunk:
                    return received
                received += chunk
        except ConnectionResetError:
            return received

    def nothing_more_within(self, seconds: float) -> bool:
        """True when the server sends nothing (and does not close) for `seconds`."""
        if self.buffer:
            return False
        self.sock.settimeout(seconds)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return True
        finally:
            self.sock.settimeout(self.timeout)
        self.buffer += chunk
        return False

    # -- a transaction

    def ehlo(self, name: str = "client.test.invalid") -> Reply:
        return self.expect(f"EHLO {name}", 250)

    def send_mail(self, sender: str, recipients: Iterable[str], text: bytes, mail_params: str = "") -> str:
        """MAIL, RCPTs, DATA; `text` is sent as is (it must be dot-stuffed and end in CRLF), then `.`.
        Returns the queue id of the `250 ... queued as ID` reply."""
        self.expect(f"MAIL FROM:<{sender}>{(' ' + mail_params) if mail_params else ''}", 250, "2.1.0")
        for recipient in recipients:
            self.expect(f"RCPT TO:<{recipient}>", 250, "2.1.5")
        self.expect("DATA", 354)
        reply = self.finish_data(text)
        assert reply.code == 250, f"message refused: {reply}"
        return queue_id_of(reply)

    def finish_data(self, text: bytes) -> Reply:
        """Sends the text and the end-of-data line, and returns the reply to it."""
        self.send(text + b".\r\n")
        return self.read_reply()


def wait_until(predicate, timeout: float = 10.0, what: str = "condition", server: Optional["PetrelServer"] = None,
               interval: float = 0.05, detail=None):
    """Polls `predicate` until it returns something truthy, and returns that; fails after `timeout` seconds,
    showing `detail()` (or the tail of the server's log) so the failure says what the relay was doing."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            if detail is not None:
                log = f"\n{detail()}"
            elif server is not None:
                log = f"\n--- petrel log ---\n{server.log_text()[-5000:]}"
            else:
                log = ""
            raise AssertionError(f"no {what} within {timeout}s{log}")
        time.sleep(interval)


def queue_id_of(reply) -> str:
    text = reply if isinstance(reply, str) else reply.text
    match = QUEUE_ID_PATTERN.search(text)
    assert match, f"no 'queued as ID' in {text!r}"
    return match.group(1)


def simple_message(subject: str = "test", body: str = "Hello.\r\n", with_date_and_id: bool = True) -> bytes:
    headers = f"From: a@example.org\r\nTo: user@example.com\r\nSubject: {subject}\r\n"
    if with_date_and_id:
        headers += "Date: Mon, 02 Jan 2023 03:04:05 +0000\r\nMessage-ID: <m1@example.org>\r\n"
    return (headers + "\r\n" + body).encode("utf-8")


def advertised_size(ehlo_reply: Reply) -> int:
    for line in ehlo_reply.lines:
        parts = line.split()
        if parts and parts[0].upper() == "SIZE" and len(parts) == 2:
            return int(parts[1])
    raise AssertionError(f"no SIZE in EHLO reply {ehlo_reply}")


def loopback_alias_usable(address: str = "127.0.0.2") -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture
def petrel_server(tmp_path):
    """A factory: `petrel_server(config_dict, listen_host="127.0.0.1")` starts a server in its own folder
    under this test's tmp_path. Every server it made is stopped at teardown."""
    servers = []

    def start(config: Optional[dict] = None, listen_host: str = "127.0.0.1", name: Optional[str] = None) -> PetrelServer:
        folder = tmp_path / (name or f"server{len(servers)}")
        server = PetrelServer(folder, config, listen_host=listen_host)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        try:
            server.stop()
        except Exception:  # noqa: BLE001 - teardown must reach every server
            server.kill()


@pytest.fixture(scope="module")
def default_server(tmp_path_factory):
    """One server with the default settings (relay from 127.0.0.0/8), shared by a module's tests."""
    server = PetrelServer(tmp_path_factory.mktemp("default-server"))
    server.start()
    yield server
    try:
        server.stop()
    except Exception:  # noqa: BLE001
        server.kill()
