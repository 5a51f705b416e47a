"""deploy/: the systemd unit passes `systemd-analyze verify` and keeps its hardening, the production
configuration passes `petrel config check`, and the relay speaks sd_notify as `Type=notify` expects
(READY=1 once it accepts connections, STOPPING=1 on SIGTERM).

Also the backup that deploy/README.md prescribes: SQLite's online backup while petrel runs, then spool/.

Needs `systemd-analyze` (Debian package `systemd`; no running systemd is needed), `/bin/kill` (`procps`,
named by ExecReload), `openssl` and `sqlite3`."""

from __future__ import annotations

import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import threading
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from conftest import PETREL_BIN, REPO_ROOT, PetrelServer, SMTPConversation, free_port, run_petrel, simple_message

DEPLOY = REPO_ROOT / "deploy"
UNIT = DEPLOY / "petrel.service"
EXAMPLE_CONFIG = DEPLOY / "petrel.toml"
INSTALLED_BINARY = "/usr/local/bin/petrel"
NOTIFY_TIMEOUT = 20.0


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    assert path, "systemd-analyze is missing: install the Debian package `systemd` (scripts/install-test-deps)"
    return path


def unit_settings(text: str) -> dict:
    """`Section.Key` -> list of values, in order (a key may repeat, as SystemCallFilter= does)."""
    settings: dict = {}
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        settings.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return settings


def installable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at the built binary (verify checks that it is executable)."""
    text = UNIT.read_text()
    assert INSTALLED_BINARY in text
    path = tmp_path / "petrel.service"
    path.write_text(text.replace(INSTALLED_BINARY, PETREL_BIN))
    return path


# ---------------------------------------------------------------------------------------------------
# The unit


def test_unit_passes_systemd_analyze_verify(tmp_path):
    unit = installable_unit(tmp_path)
    result = subprocess.run([systemd_analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # verify exits 0 on unknown keys and bad values too ("..., ignoring"): any word about the unit is a fault.
    complaints = [line for line in output.splitlines() if "petrel.service" in line or str(tmp_path) in line]
    assert complaints == [], output


def test_unit_is_notify_type_hardened_and_reloadable():
    settings = unit_settings(UNIT.read_text())

    def one(key):
        values = settings.get(f"Service.{key}")
        assert values, f"{key}= is missing from deploy/petrel.service"
        return values[-1]

    assert one("Type") == "notify"
    assert one("NotifyAccess") == "main"
    assert one("ExecStart").startswith(f"{INSTALLED_BINARY} serve --config /etc/petrel/petrel.toml")
    assert one("ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one("User") == "petrel" and one("Group") == "petrel"
    assert one("ProtectSystem") == "strict"
    assert "/var/lib/petrel" in one("ReadWritePaths").split()
    assert one("NoNewPrivileges") == "yes"
    assert one("AmbientCapabilities") == "CAP_NET_BIND_SERVICE"
    assert one("CapabilityBoundingSet") == "CAP_NET_BIND_SERVICE"
    for key in ("ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "RestrictNamespaces", "RestrictSUIDSGID", "LockPersonality"):
        assert one(key) == "yes", key
    assert settings.get("Install.WantedBy") == ["multi-user.target"]


def test_unit_stop_timeout_is_above_the_graceful_shutdown_bound():
    source = (REPO_ROOT / "Sources" / "petrel" / "ServeCommand.swift").read_text()
    match = re.search(r"shutdownBound: Duration = \.seconds\((\d+)\)", source)
    assert match, "ServeCommand.shutdownBound not found: update this test with where the bound now lives"
    bound = int(match.group(1))
    stop = unit_settings(UNIT.read_text())["Service.TimeoutStopSec"][-1]
    seconds = int(stop[:-1]) if stop.endswith("s") else int(stop)
    assert seconds >= bound + 15, f"TimeoutStopSec={stop} leaves no room above petrel's own {bound}s bound"


def test_unit_exposure_stays_low(tmp_path):
    """`systemd-analyze security` rates what a compromised petrel could still do; 10 is unconfined."""
    unit = installable_unit(tmp_path)
    result = subprocess.run([systemd_analyze(), "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60)
    match = re.search(r"Overall exposure level for petrel\.service: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout


def test_unit_data_directory_is_the_example_queue_directory():
    settings = unit_settings(UNIT.read_text())
    example = tomllib.loads(EXAMPLE_CONFIG.read_text())
    queue_folder = str(Path(example["queue"]["path"]).parent)
    assert queue_folder in settings["Service.ReadWritePaths"][-1].split()
    assert settings["Service.StateDirectory"][-1] == Path(queue_folder).name
    assert settings["Service.WorkingDirectory"][-1] == queue_folder


# ---------------------------------------------------------------------------------------------------
# The production configuration


def make_certificate(folder: Path) -> tuple:
    folder.mkdir(parents=True, exist_ok=True)
    certificate, key = folder / "fullchain.pem", folder / "privkey.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "2", "-subj", "/CN=relay.isp.example", "-keyout", str(key), "-out", str(certificate)],
        check=True, capture_output=True, timeout=60,
    )
    return certificate, key


def test_example_configuration_passes_config_check(tmp_path):
    """The example names /etc/petrel and /var/lib/petrel; here they become folders of this test, with a
    real certificate and key and an (empty) users file where the example expects them, so that the
    check passes also once it reads those files."""
    etc, var = tmp_path / "etc", tmp_path / "var"
    text = EXAMPLE_CONFIG.read_text()
    assert "/etc/petrel/" in text and "/var/lib/petrel/" in text
    text = text.replace("/etc/petrel/", f"{etc}/").replace("/var/lib/petrel/", f"{var}/")
    config = tomllib.loads(text)
    certificate, key = make_certificate(etc / "tls")
    assert config["tls"] == {"certificate": str(certificate), "key": str(key)}
    var.mkdir()
    Path(config["auth"]["users_file"]).write_text("")
    path = etc / "petrel.toml"
    path.write_text(text)

    result = run_petrel("config", "check", "--config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == f"{path}: ok"


def test_example_configuration_serves(tmp_path, monkeypatch):
    """The example, on free loopback ports instead of 25, 587 and 9025, starts, tells systemd it is ready,
    offers STARTTLS with its certificate, and stops on SIGTERM."""
    etc, var = tmp_path / "etc", tmp_path / "var"
    make_certificate(etc / "tls")
    var.mkdir()
    relay, submission, metrics = free_port(), free_port(), free_port()
    section, lines = None, []
    for line in EXAMPLE_CONFIG.read_text().replace("/etc/petrel/", f"{etc}/").replace("/var/lib/petrel/", f"{var}/").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "inbound" and line.startswith("listen ="):
            line = f'listen = ["127.0.0.1:{relay}"]'
        elif section == "inbound" and line.startswith("submission_listen ="):
            line = f'submission_listen = ["127.0.0.1:{submission}"]'
        elif section == "metrics" and line.startswith("listen ="):
            line = f'listen = "127.0.0.1:{metrics}"'
        lines.append(line)
    config = etc / "petrel.toml"
    config.write_text("\n".join(lines) + "\n")

    sock, name = notify_socket(tmp_path, abstract=True)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    log = (tmp_path / "petrel.log").open("wb")
    process = subprocess.Popen([PETREL_BIN, "serve", "--config", str(config)], cwd="/", stdin=subprocess.DEVNULL,
                               stdout=log, stderr=log)
    try:
        ready = receive(sock)
        assert ready.get("READY") == "1", (tmp_path / "petrel.log").read_text()
        for port in (relay, submission):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
                client.settimeout(5)
                assert client.recv(4096).startswith(b"220 relay.isp.example")
                client.sendall(b"EHLO client.test\r\n")
                reply = b""
                while not re.search(rb"(^|\r\n)250 [^\r]*\r\n$", reply):
                    chunk = client.recv(4096)
                    assert chunk, reply
                    reply += chunk
                assert b"STARTTLS" in reply, reply
        process.send_signal(signal.SIGTERM)
        assert receive(sock).get("STOPPING") == "1"
        assert process.wait(timeout=10) == 0, (tmp_path / "petrel.log").read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        log.close()
        sock.close()


def test_example_configuration_is_the_isp_relay_case():
    config = tomllib.loads(EXAMPLE_CONFIG.read_text())
    inbound, access, delivery = config["inbound"], config["access"], config["delivery"]
    assert any(address.endswith(":25") for address in inbound["listen"])
    assert any(address.endswith(":587") for address in inbound["submission_listen"])
    assert access["client_networks"] and access["relay_networks"]
    assert delivery["smarthost"] == "", "the ISP relay delivers to MX hosts itself"
    assert delivery["retry_min"] and delivery["retry_max"] and delivery["max_queue_lifetime"]
    assert config["metrics"]["listen"] == "127.0.0.1:9025"
    assert config["log"]["format"] in ("human", "json")
    assert config["tls"]["certificate"] and config["tls"]["key"]


# ---------------------------------------------------------------------------------------------------
# sd_notify


def notify_socket(tmp_path: Path, abstract: bool) -> tuple:
    """A datagram socket as systemd would make it, and its name for $NOTIFY_SOCKET."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"petrel-test-{uuid.uuid4().hex}"
        sock.bind("\0" + name)
        return sock, "@" + name
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    return sock, str(path)


def receive(sock: socket.socket) -> dict:
    sock.settimeout(NOTIFY_TIMEOUT)
    datagram = sock.recv(4096).decode()
    assert datagram, "an empty notification"
    return dict(line.split("=", 1) for line in datagram.split("\n"))


@pytest.mark.parametrize("abstract", [False, True], ids=["path", "abstract"])
def test_ready_once_listening_and_stopping_on_sigterm(tmp_path, monkeypatch, abstract):
    sock, name = notify_socket(tmp_path, abstract)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    server = PetrelServer(tmp_path / "server")
    server.port = free_port()
    server.write_config()
    server._spawn()
    try:
        ready = receive(sock)
        assert ready.get("READY") == "1", ready
        assert f"127.0.0.1:{server.port}" in ready.get("STATUS", ""), ready
        # READY=1 means ready: the first connection, with no retry, is greeted.
        with socket.create_connection(server.address, timeout=5) as client:
            client.settimeout(5)
            assert client.recv(4096).startswith(b"220 "), server.log_text()
            client.sendall(b"QUIT\r\n")
        server.send_signal(signal.SIGTERM)
        stopping = receive(sock)
        assert stopping.get("STOPPING") == "1", stopping
        assert server.wait(timeout=10) == 0, server.log_text()
    finally:
        server.kill()
        sock.close()


def test_reload_is_announced_with_reloading_then_ready(tmp_path, monkeypatch):
    """SIGHUP (ExecReload): RELOADING=1 with the monotonic clock's time, then READY=1 once it is done."""
    sock, name = notify_socket(tmp_path, abstract=True)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    server = PetrelServer(tmp_path / "server")
    server.port = free_port()
    server.write_config()
    server._spawn()
    try:
        assert receive(sock).get("READY") == "1"
        with socket.create_connection(server.address, timeout=5) as client:
            client.settimeout(5)
            assert client.recv(4096).startswith(b"220 ")
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        server.send_signal(signal.SIGHUP)
        reloading = receive(sock)
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        assert reloading.get("RELOADING") == "1", reloading
        assert before <= int(reloading["MONOTONIC_USEC"]) <= after, (before, reloading, after)
        assert receive(sock).get("READY") == "1"
        server.send_signal(signal.SIGTERM)
        assert receive(sock).get("STOPPING") == "1"
        assert server.wait(timeout=10) == 0, server.log_text()
    finally:
        server.kill()
        sock.close()


def test_no_ready_when_the_listener_cannot_bind(tmp_path, monkeypatch):
    """A port already taken: systemd hears why in STATUS=, and never READY=1."""
    sock, name = notify_socket(tmp_path, abstract=True)
    monkeypatch.setenv("NOTIFY_SOCKET", name)
    notices = []
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = PetrelServer(tmp_path / "server")
        server.port = taken.getsockname()[1]
        server.write_config()
        server._spawn()
        try:
            while not any("failed to listen" in notice.get("STATUS", "") for notice in notices):
                notices.append(receive(sock))
            # Whatever else arrives while the process winds down.
            sock.settimeout(1.0)
            try:
                while True:
                    notices.append(dict(line.split("=", 1) for line in sock.recv(4096).decode().split("\n")))
            except socket.timeout:
                pass
        finally:
            server.kill()
            sock.close()
    assert not any(notice.get("READY") == "1" for notice in notices), notices


# ---------------------------------------------------------------------------------------------------
# The backup that deploy/README.md prescribes


def test_online_backup_while_running_then_spool_copy(petrel_server, tmp_path):
    """`sqlite3 queue.sqlite ".backup 'FILE'"` while petrel runs and takes mail, then a copy of spool/:
    the backup is consistent and holds every message acknowledged before it, with its spool file."""
    # Deliveries fail (nothing listens there), so the messages stay queued.
    server = petrel_server({"delivery": {"smarthost": f"127.0.0.1:{free_port()}", "smarthost_tls": "none"}})
    large = simple_message("large", body=("x" * 78 + "\r\n") * 4000)
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        small_id = smtp.send_mail("a@example.org", ["r@dest.test"], simple_message("small"))
        large_id = smtp.send_mail("a@example.org", ["r@dest.test"], large)
    spooled = server.message_row(large_id)["spool_file"]
    assert spooled, "a message over 256 KiB should be spooled"

    backup = tmp_path / "petrel-backup.sqlite"
    stop = threading.Event()

    def keep_sending():
        with SMTPConversation(server.address) as smtp:
            smtp.ehlo()
            while not stop.is_set():
                smtp.send_mail("a@example.org", ["r@dest.test"], simple_message("during the backup"))

    sender = threading.Thread(target=keep_sending)
    sender.start()
    try:
        result = subprocess.run(["sqlite3", str(server.queue_path), f".backup '{backup}'"],
                                capture_output=True, text=True, timeout=60)
        spool_copy = tmp_path / "petrel-backup.spool"
        shutil.copytree(server.spool_dir, spool_copy)
    finally:
        stop.set()
        sender.join(timeout=30)
    assert result.returncode == 0, result.stderr

    check = subprocess.run(["sqlite3", str(backup), "PRAGMA integrity_check"], capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == "ok", check.stdout + check.stderr
    with sqlite3.connect(f"file:{backup}?mode=ro", uri=True) as connection:
        queued = {row[0] for row in connection.execute("SELECT queue_id FROM message")}
        spool_files = [row[0] for row in connection.execute("SELECT spool_file FROM message WHERE spool_file IS NOT NULL")]
    assert {small_id, large_id} <= queued
    assert spooled in spool_files
    for name in spool_files:
        assert (spool_copy / name).is_file(), f"{name} is named by the backup but not in the spool copy"
    assert (spool_copy / spooled).read_bytes() == server.stored_parts(large_id)[1]
