"""STARTTLS and SMTP AUTH (issue 4) against the real `petrel serve`, with real clients: swaks, openssl
s_client, Python's smtplib and raw sockets; and on the delivery side, destination servers written here that
speak STARTTLS and AUTH (the shared `smtp_sink.SMTPSink`, extended).

Certificates are made at test time with the `openssl` CLI (self-signed, for `localhost` and 127.0.0.1), and
users with `petrel user add --password-stdin`.

One relay (`tls_relay`, shared by the module) has [tls], [auth], a submission (STARTTLS) and a submissions
(implicit TLS) listener, a plain smarthost sink, and routes: `tls-dest.test` to a destination that offers
STARTTLS, `broken-tls.test` to one whose handshake breaks, `hold.test` to a closed port (so that messages
stay in the queue to be read). Tests whose failed logins would throttle 127.0.0.1 connect from other
127.0.0.x addresses, or use a relay of their own.
"""

from __future__ import annotations

import base64
import errno
import json
import re
import smtplib
import socket
import ssl
import subprocess
import threading
import time
import warnings
from pathlib import Path
from typing import Callable, Optional

import pytest

from conftest import wait_until as conftest_wait_until
from conftest import (HOSTNAME, PETREL_BIN, PetrelServer, SMTPConversation, free_port, loopback_alias_usable,
                      queue_id_of, run_petrel, simple_message)
from smtp_sink import MAX_SIZE, READ_POLL, Command, SMTPSink, _Closed, _Connection

USER, PASSWORD = "app", "s3cret pass"                    # a space: --password-stdin reads the whole line
LIMITED, LIMITED_PASSWORD = "limited", "l1m1ted"
LIMITED_SENDERS = "app@example.com,@example.org"
SMARTHOST_USER, SMARTHOST_PASSWORD = "relay", "sm4rt-p4ss"
WAIT = 10.0

pytestmark = [
    pytest.mark.skipif(not loopback_alias_usable("127.0.0.2"), reason="127.0.0.x addresses are not usable"),
]


# ---------------------------------------------------------------------------------------------------
# Certificates, users, helpers


def make_certificate(folder: Path, name: str = "localhost") -> tuple:
    """A self-signed certificate (EC P-256) for `name` and 127.0.0.1: (certificate path, key path)."""
    folder.mkdir(parents=True, exist_ok=True)
    certificate, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(certificate), "-days", "2", "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1"],
        check=True, capture_output=True, timeout=30,
    )
    return certificate, key


def petrel_with_input(args: list, text: str) -> subprocess.CompletedProcess:
    """The petrel CLI with `text` on standard input (retried while a concurrent build relinks the binary)."""
    for attempt in range(50):
        try:
            return subprocess.run([PETREL_BIN, *args], input=text, capture_output=True, text=True, timeout=30,
                                  check=False)
        except OSError as error:
            if error.errno != errno.ETXTBSY or attempt == 49:
                raise
            time.sleep(0.2)


def add_user(config: Path, name: str, password: str, allowed: Optional[str] = None, stdin_suffix: str = "\n"):
    args = ["user", "add", name, "--password-stdin", "--config", str(config)]
    if allowed is not None:
        args += ["--allowed-senders", allowed]
    return petrel_with_input(args, password + stdin_suffix)


def client_context(cafile: Optional[Path] = None) -> ssl.SSLContext:
    """Verifying against the test certificate when given, else not verifying at all."""
    if cafile is not None:
        return ssl.create_default_context(cafile=str(cafile))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def plain_response(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def start_tls(smtp: SMTPConversation, context: Optional[ssl.SSLContext] = None, hostname: str = "localhost") -> str:
    """Switches a conversation that has just read the `220` to STARTTLS over to TLS; returns the version."""
    assert smtp.buffer == b"", f"bytes after the 220 to STARTTLS, before the handshake: {smtp.buffer!r}"
    smtp.sock = (context or client_context()).wrap_socket(smtp.sock, server_hostname=hostname)
    smtp.sock.settimeout(smtp.timeout)
    return smtp.sock.version()


def secure(smtp: SMTPConversation) -> str:
    smtp.ehlo()
    smtp.expect("STARTTLS", 220, "2.0.0")
    version = start_tls(smtp)
    smtp.ehlo()
    return version


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, what: str = "condition",
               server: Optional[PetrelServer] = None, interval: float = 0.05):
    return conftest_wait_until(predicate, timeout, what, server, interval)


def log_lines(server: PetrelServer, *needles: str) -> list:
    return [line for line in server.log_text().splitlines() if all(needle in line for needle in needles)]


DELIVERY_LINE = re.compile(r"(?P<queue_id>[0-9A-Z]{14}): to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+), .*status=(?P<status>[a-z]+) ")


def delivery_line(server: PetrelServer, queue_id: str, status: str) -> Optional[str]:
    for line in server.log_text().splitlines():
        match = DELIVERY_LINE.search(line)
        if match and match["queue_id"] == queue_id and match["status"] == status:
            return line
    return None


def wait_for_delivery_line(server: PetrelServer, queue_id: str, status: str, timeout: float = WAIT) -> str:
    return wait_until(lambda: delivery_line(server, queue_id, status), timeout,
                      f"'{queue_id}: ... status={status}' log line", server)


def swaks(port: int, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--timeout", "10", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def ehlo_keywords(reply) -> list:
    return [line.upper() for line in reply.lines[1:]]


# ---------------------------------------------------------------------------------------------------
# A destination that speaks STARTTLS and AUTH: SMTPSink, with its connection class extended.


class TLSSink(SMTPSink):
    """An `SMTPSink` that offers STARTTLS (Python's `ssl` wraps the socket after the 220), and optionally
    demands AUTH PLAIN/LOGIN (offered only after TLS; MAIL before it gets 530), or breaks the handshake
    (220 to STARTTLS, then garbage instead of a ServerHello, then close)."""

    def __init__(self, host: str, port: int, name: str, certificate: Path, key: str,
                 credentials: Optional[dict] = None, break_handshake: bool = False):
        super().__init__(host, port, name=name)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(certificate), str(key))
        self.credentials = credentials
        self.break_handshake = break_handshake
        self.handshakes: dict = {}          # connection number -> TLS version
        self.handshake_failures: list = []  # (connection number, reason)
        self.logins: list = []              # (connection number, mechanism, user, accepted)
        self.early_bytes: list = []         # (connection number, bytes pipelined after STARTTLS)

    def tls_of(self, message) -> Optional[str]:
        with self._condition:
            return self.handshakes.get(message.connection)

    def commands_of(self, number: int) -> list:
        with self._condition:
            return [command.line for command in self.commands if command.connection == number]

    def _serve(self, sock, peer, number):
        connection = _TLSConnection(self, sock, peer, number)
        try:
            connection.run()
        except (OSError, _Closed, ssl.SSLError):
            pass
        finally:
            with self._condition:
                self._sockets.discard(sock)
                self._sockets.discard(connection.sock)
                self._condition.notify_all()
            for open_socket in (connection.sock, sock):
                try:
                    open_socket.close()
                except OSError:
                    pass


class _TLSConnection(_Connection):
    def __init__(self, sink: TLSSink, sock, peer, number):
        super().__init__(sink, sock, peer, number)
        self.tls_version: Optional[str] = None
        self.user: Optional[str] = None

    def peer_gone(self) -> bool:
        # MSG_PEEK does not pass through TLS; a TLS peer is taken to be there.
        return False if self.tls_version else super().peer_gone()

    def run(self) -> None:
        sink: TLSSink = self.sink
        self.send(sink.greeting)
        while True:
            line = self.read_line().decode("utf-8", errors="replace")
            sink._record(lambda: sink.commands.append(Command(self.number, line)))
            verb = line.split(" ", 1)[0].upper()
            argument = line[len(verb):].strip()
            if verb == "EHLO":
                self.helo = argument
                self.reset_transaction()
                extensions = [sink.name, "PIPELINING", "8BITMIME", "DSN", f"SIZE {MAX_SIZE}"]
                if self.tls_version is None:
                    extensions.append("STARTTLS")
                elif sink.credentials and self.user is None:
                    extensions.append("AUTH PLAIN LOGIN")
                for extension in extensions:
                    self.send(f"250-{extension}")
                self.send("250 ENHANCEDSTATUSCODES")
            elif verb == "STARTTLS":
                self.start_tls()
            elif verb == "AUTH":
                self.auth(argument)
            elif verb == "MAIL" and sink.credentials and self.user is None:
                self.send("530 5.7.0 Authentication required")
            elif verb == "HELO":
                self.helo = argument
                self.reset_transaction()
                self.send(f"250 {sink.name}")
            elif verb == "MAIL":
                self.mail(argument)
            elif verb == "RCPT":
                self.rcpt(argument)
            elif verb == "DATA":
                self.data()
            elif verb == "RSET":
                self.reset_transaction()
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Command not implemented")

    def start_tls(self) -> None:
        sink: TLSSink = self.sink
        if self.tls_version is not None:
            self.send("503 5.5.1 TLS already active")
            return
        self.send("220 2.0.0 Ready to start TLS")
        if self.buffer:
            early = self.buffer
            sink._record(lambda: sink.early_bytes.append((self.number, early)))
            self.buffer = b""
        self.sock.settimeout(5.0)
        if sink.break_handshake:
            try:
                self.sock.recv(65536)  # the ClientHello
            except OSError:
                pass
            self.sock.sendall(b"this is not a TLS record\r\n")
            sink._record(lambda: sink.handshake_failures.append((self.number, "broken on purpose")))
            raise _Closed()
        try:
            tls = sink.context.wrap_socket(self.sock, server_side=True)
        except (ssl.SSLError, OSError) as error:
            reason = str(error)
            sink._record(lambda: sink.handshake_failures.append((self.number, reason)))
            raise _Closed()
        tls.settimeout(READ_POLL)
        self.sock = tls
        self.tls_version = tls.version()
        with sink._condition:
            sink._sockets.add(tls)
        sink._record(lambda: sink.handshakes.__setitem__(self.number, self.tls_version))
        # RFC 3207 §4.2: forget everything, a new EHLO follows.
        self.helo = ""
        self.reset_transaction()

    def auth(self, argument: str) -> None:
        sink: TLSSink = self.sink
        if not sink.credentials or self.tls_version is None or self.user is not None:
            self.send("503 5.5.1 AUTH not available")
            return
        words = argument.split()
        mechanism = words[0].upper() if words else ""
        try:
            if mechanism == "PLAIN":
                response = words[1] if len(words) > 1 else None
                if response is None:
                    self.send("334 ")
                    response = self.read_line().decode()
                _, user, password = base64.b64decode(response, validate=True).decode().split("\0")
            elif mechanism == "LOGIN":
                self.send("334 VXNlcm5hbWU6")
                user = base64.b64decode(self.read_line(), validate=True).decode()
                self.send("334 UGFzc3dvcmQ6")
                password = base64.b64decode(self.read_line(), validate=True).decode()
            else:
                self.send("504 5.5.4 Unrecognized authentication type")
                return
        except ValueError:
            self.send("501 5.5.2 Cannot decode response")
            return
        accepted = sink.credentials.get(user) == password
        sink._record(lambda: sink.logins.append((self.number, mechanism, user, accepted)))
        if accepted:
            self.user = user
            self.send("235 2.7.0 Authentication successful")
        else:
            self.send("535 5.7.8 Authentication credentials invalid")


# ---------------------------------------------------------------------------------------------------
# Fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Certificates, a users file made with `petrel user add`, and the destination servers."""
    folder = tmp_path_factory.mktemp("tls-auth")
    certificate, key = make_certificate(folder / "certs")
    users_config = folder / "users" / "petrel.toml"
    users_config.parent.mkdir()
    users_config.write_text('[auth]\nusers_file = "users"\n')
    for name, password, allowed in [(USER, PASSWORD, None), (LIMITED, LIMITED_PASSWORD, LIMITED_SENDERS)]:
        result = add_user(users_config, name, password, allowed)
        assert result.returncode == 0, result.stdout + result.stderr
    port = free_port()  # the destinations all listen on one port, each on its own address
    sinks = {
        "smarthost": SMTPSink("127.0.0.1", free_port(), name="smarthost.test").start(),
        "tls": TLSSink("127.0.0.5", port, "tls-dest.test", certificate, key).start(),
        "broken": TLSSink("127.0.0.6", port, "broken-tls.test", certificate, key, break_handshake=True).start(),
    }
    yield {"folder": folder, "certificate": certificate, "key": key, "users_file": users_config.parent / "users",
           "sinks": sinks, "port": port}
    for sink in sinks.values():
        sink.stop()


def relay_config(lab: dict, delivery: Optional[dict] = None, routes: Optional[dict] = None,
                 submission: bool = True) -> dict:
    settings = {"retry_min": "1s", "retry_max": "2s", "connect_timeout": "2s", "command_timeout": "3s",
                "data_timeout": "3s"}
    settings.update(delivery or {})
    config = {
        # Relative paths: they resolve against the configuration file's folder.
        "tls": {"certificate": "tls/cert.pem", "key": "tls/key.pem"},
        "auth": {"users_file": str(lab["users_file"])},
        "delivery": settings,
    }
    if submission:
        config["inbound"] = {"submission_listen": [f"127.0.0.1:{free_port()}"],
                             "submissions_listen": [f"127.0.0.1:{free_port()}"]}
    if routes:
        config["routes"] = routes
    return config


def start_relay(lab: dict, folder: Path, config: dict) -> PetrelServer:
    server = PetrelServer(folder, config)
    (folder / "tls").mkdir(parents=True, exist_ok=True)
    (folder / "tls" / "cert.pem").write_bytes(lab["certificate"].read_bytes())
    (folder / "tls" / "key.pem").write_bytes(lab["key"].read_bytes())
    return server.start()


def listener_port(server: PetrelServer, key: str) -> int:
    return int(server.config["inbound"][key][0].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def tls_relay(lab):
    sinks = lab["sinks"]
    config = relay_config(lab, delivery={"smarthost": f"127.0.0.1:{sinks['smarthost'].port}"}, routes={
        "tls-dest.test": f"127.0.0.5:{lab['port']}",
        "broken-tls.test": f"127.0.0.6:{lab['port']}",
        "hold.test": f"127.0.0.1:{free_port()}",  # nothing listens: messages stay queued
    })
    config["access"] = {"relay_networks": ["127.0.0.1/32"]}
    server = start_relay(lab, lab["folder"] / "relay", config)
    server.submission_port = listener_port(server, "submission_listen")
    server.submissions_port = listener_port(server, "submissions_listen")
    yield server
    server.kill()


# ---------------------------------------------------------------------------------------------------
# Submission with real clients


def test_swaks_tls_auth_plain_on_submission_is_queued_and_delivered(tls_relay, lab):
    smarthost = lab["sinks"]["smarthost"]
    result = swaks(tls_relay.submission_port, "--tls", "--auth", "PLAIN", "--auth-user", USER,
                   "--auth-password", PASSWORD, "--from", "someone@example.com", "--to", "user@far.test",
                   "--header", "Subject: swaks tls auth")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  235 2.7.0" in result.stdout, result.stdout
    queue_id = queue_id_of(result.stdout)
    wait_until(lambda: [m for m in smarthost.snapshot() if m.header("Subject") == "swaks tls auth"], WAIT,
               "delivery to the smarthost", tls_relay)
    [message] = [m for m in smarthost.snapshot() if m.header("Subject") == "swaks tls auth"]
    assert message.mail_from == "someone@example.com"
    assert message.recipients == ["user@far.test"]
    received = " ".join(message.parsed().get_all("Received")[0].split())
    assert re.search(r"with ESMTPSA \(TLSv1\.[23][^)]*\) \(authenticated as app\) id " + queue_id, received), received
    # The inbound log line names the user and the TLS version; the password is nowhere.
    [queued] = log_lines(tls_relay, f"{queue_id}: from=<someone@example.com>", "status=queued")
    assert "sasl_username=app" in queued and re.search(r"tls=TLSv1\.[23]", queued), queued
    log = tls_relay.log_text()
    assert PASSWORD not in log and plain_response(USER, PASSWORD) not in log


def test_swaks_without_tls_gets_no_auth_on_submission(tls_relay):
    result = swaks(tls_relay.submission_port, "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
                   "--from", "someone@example.com", "--to", "user@far.test", "--quit-after", "AUTH")
    assert result.returncode != 0, result.stdout
    assert "Host did not advertise authentication" in result.stdout + result.stderr
    assert "250-STARTTLS" in result.stdout or "250 STARTTLS" in result.stdout
    # Without AUTH, MAIL is refused (RFC 6409 §4.3), even from 127.0.0.1, which may relay on port 25.
    result = swaks(tls_relay.submission_port, "--from", "someone@example.com", "--to", "user@far.test")
    assert result.returncode != 0, result.stdout
    assert "<** 530 5.7.0" in result.stdout, result.stdout
    # And forcing AUTH in plaintext: 538 5.7.11.
    with SMTPConversation(("127.0.0.1", tls_relay.submission_port)) as smtp:
        assert not [k for k in ehlo_keywords(smtp.ehlo()) if k.startswith("AUTH")]
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 538, "5.7.11")
        smtp.expect("MAIL FROM:<someone@example.com>", 530, "5.7.0")


def test_swaks_wrong_password_gets_535(tls_relay):
    started = time.monotonic()
    result = swaks(tls_relay.submission_port, "--local-interface", "127.0.0.3", "--tls", "--auth", "PLAIN",
                   "--auth-user", USER, "--auth-password", "wrong", "--from", "someone@example.com", "--to", "u@far.test")
    assert result.returncode != 0, result.stdout
    assert re.search(r"^<~\* +535 5\.7\.8 ", result.stdout, re.M), result.stdout
    assert time.monotonic() - started >= 0.9, "a failed AUTH is answered after a delay"
    [warning] = log_lines(tls_relay, "AUTH failed", "127.0.0.3")
    assert "wrong" not in warning


def test_a_failed_auth_logs_only_the_names_of_real_users(tls_relay):
    """A name that is no user's is often the password typed into the wrong field: it is not logged. A real
    user's name with a wrong password is."""
    typed_password = "Tr0ub4dor-in-the-user-field"
    for source, name in (("127.0.0.21", typed_password), ("127.0.0.22", USER)):
        with SMTPConversation((tls_relay.address[0], tls_relay.submission_port), source_address=(source, 0)) as smtp:
            secure(smtp)
            smtp.expect(f"AUTH PLAIN {plain_response(name, 'wrong')}", 535, "5.7.8")
    wait_until(lambda: log_lines(tls_relay, "AUTH failed", "127.0.0.22"), what="the second failure logged")
    [unknown] = log_lines(tls_relay, "AUTH failed", "127.0.0.21")
    assert typed_password not in tls_relay.log_text(), unknown
    assert "user=" not in unknown, unknown
    [known] = log_lines(tls_relay, "AUTH failed", "127.0.0.22")
    assert f"user={USER}" in known, known


def test_swaks_tls_on_connect_on_submissions(tls_relay):
    result = swaks(tls_relay.submissions_port, "--tls-on-connect", "--auth", "LOGIN", "--auth-user", USER,
                   "--auth-password", PASSWORD, "--from", "someone@example.com", "--to", "user@hold.test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"TLS started with cipher TLSv1\.[23]", result.stdout), result.stdout
    assert "STARTTLS" not in result.stdout
    message = tls_relay.queue_show(queue_id_of(result.stdout))
    assert message["auth_user"] == USER
    assert message["protocol"] == "ESMTPSA"


@pytest.mark.parametrize("version_flag", ["-tls1_3", "-tls1_2"])
def test_openssl_s_client_starttls_handshake(tls_relay, lab, version_flag):
    result = subprocess.run(
        ["openssl", "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{tls_relay.port}", version_flag,
         "-CAfile", str(lab["certificate"]), "-verify_return_error", "-verify_ip", "127.0.0.1", "-brief", "-ign_eof"],
        input="EHLO client.test\r\nQUIT\r\n", capture_output=True, text=True, timeout=30, check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    expected = "TLSv1.3" if version_flag == "-tls1_3" else "TLSv1.2"
    assert re.search(rf"Protocol version: {re.escape(expected)}", output), output
    assert "Verification: OK" in output, output
    # What the server said after the handshake (s_client prints it on standard output): the new EHLO
    # gets AUTH and no STARTTLS.
    assert re.search(r"^250[- ]AUTH PLAIN LOGIN\r?$", result.stdout, re.M), output
    assert "STARTTLS" not in result.stdout, output
    assert re.search(r"^221 2\.0\.0", result.stdout, re.M), output


def test_tls_1_1_is_refused(tls_relay):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1_1
        context.set_ciphers("ALL:@SECLEVEL=0")
    except (ValueError, ssl.SSLError):
        pytest.skip("this OpenSSL cannot offer TLS 1.1")
    with SMTPConversation(tls_relay.address) as smtp:
        smtp.ehlo()
        smtp.expect("STARTTLS", 220, "2.0.0")
        with pytest.raises((ssl.SSLError, ConnectionError)):
            start_tls(smtp, context)


def test_smtplib_starttls_and_login(tls_relay, lab):
    with smtplib.SMTP("127.0.0.1", tls_relay.submission_port, timeout=10) as client:
        client.ehlo("smtplib.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        # Verified against the test certificate: petrel serves the configured one, for 127.0.0.1.
        code, _ = client.starttls(context=client_context(lab["certificate"]))
        assert code == 220
        client.ehlo("smtplib.test")
        assert not client.has_extn("starttls")
        assert set(client.esmtp_features["auth"].upper().split()) == {"PLAIN", "LOGIN"}
        code, text = client.login(USER, PASSWORD)
        assert code == 235, text
        refused = client.sendmail("someone@example.com", ["user@hold.test"], simple_message("smtplib starttls"))
        assert refused == {}


def test_smtplib_auth_login_with_challenges(tls_relay):
    with smtplib.SMTP("127.0.0.1", tls_relay.port, timeout=10) as client:
        client.starttls(context=client_context())
        client.ehlo("smtplib.test")
        client.user, client.password = USER, PASSWORD
        code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        assert code == 235


def test_smtplib_smtp_ssl_and_login(tls_relay, lab):
    with smtplib.SMTP_SSL("127.0.0.1", tls_relay.submissions_port, timeout=10,
                          context=client_context(lab["certificate"])) as client:
        code, greeting = client.ehlo("smtplib.test")
        assert code == 250
        assert not client.has_extn("starttls")
        assert client.has_extn("auth")
        assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
        client.login(USER, PASSWORD)
        _, reply = client.mail("someone@example.com")
        client.rcpt("user@hold.test")
        code, reply = client.data(simple_message("smtplib ssl"))
        assert code == 250, reply
        queue_id = queue_id_of(reply.decode())
    assert tls_relay.queue_show(queue_id)["auth_user"] == USER


def test_starttls_does_not_answer_pipelined_commands(tls_relay):
    """CVE-2011-0411: what the client pipelined after STARTTLS, before the handshake, is thrown away."""
    with SMTPConversation(tls_relay.address) as smtp:
        smtp.ehlo()
        smtp.send("STARTTLS\r\nRSET\r\n")
        reply = smtp.read_reply()
        assert reply.code == 220, reply
        time.sleep(0.2)  # had the RSET been taken, its reply would be here by now (in plaintext)
        start_tls(smtp)
        smtp.send("EHLO after.test\r\n")
        reply = smtp.read_reply()
        assert reply.code == 250 and reply.lines[0].startswith(f"{HOSTNAME} greets after.test"), reply
        assert smtp.nothing_more_within(0.5), f"an extra reply: {smtp.buffer!r}"
        smtp.expect("NOOP", 250, "2.0.0")


def test_pipelined_ehlo_and_starttls_then_a_discarded_command(tls_relay):
    """EHLO and STARTTLS in one packet (RFC 2920 allows STARTTLS last in a group): both are answered, in
    order and in plaintext; the NOOP after them is not."""
    with SMTPConversation(tls_relay.address) as smtp:
        smtp.send("EHLO first.test\r\nSTARTTLS\r\nNOOP\r\n")
        first = smtp.read_reply()
        assert first.code == 250 and "STARTTLS" in ehlo_keywords(first), first
        go_ahead = smtp.read_reply()
        assert go_ahead.code == 220 and go_ahead.enhanced == "2.0.0", go_ahead
        start_tls(smtp)
        assert smtp.nothing_more_within(0.3), f"a reply before any command: {smtp.buffer!r}"
        reply = smtp.command("EHLO second.test")
        assert reply.code == 250 and reply.lines[0].endswith("greets second.test"), reply


def test_many_quick_handshakes(tls_relay):
    """A client that sends its ClientHello the moment it reads the 220 must never find the server not yet
    listening for it (it was once read as plaintext and thrown away, and the handshake hung)."""
    for attempt in range(100):
        with SMTPConversation(tls_relay.address, timeout=3) as smtp:
            smtp.send("EHLO quick.test\r\nSTARTTLS\r\n")
            smtp.read_replies(2)
            try:
                start_tls(smtp)
            except (TimeoutError, socket.timeout):
                raise AssertionError(f"handshake {attempt + 1} hung") from None


def test_starttls_injection_of_a_transaction(tls_relay):
    """The classic attack: a man in the middle appends MAIL/RCPT after STARTTLS; nothing of it survives."""
    with SMTPConversation(tls_relay.address) as smtp:
        smtp.ehlo()
        smtp.send("STARTTLS\r\nMAIL FROM:<evil@attacker.test>\r\nRCPT TO:<victim@hold.test>\r\n")
        assert smtp.read_reply().code == 220
        start_tls(smtp)
        smtp.expect("RCPT TO:<victim@hold.test>", 503, "5.5.1")
        smtp.ehlo()
        smtp.expect("RCPT TO:<victim@hold.test>", 503, "5.5.1")


def test_session_is_reset_after_starttls(tls_relay):
    with SMTPConversation(tls_relay.address) as smtp:
        smtp.ehlo()
        smtp.expect("STARTTLS", 220, "2.0.0")
        start_tls(smtp)
        smtp.expect("MAIL FROM:<a@example.com>", 503, "5.5.1")
        keywords = ehlo_keywords(smtp.ehlo())
        assert "STARTTLS" not in keywords
        assert "AUTH PLAIN LOGIN" in keywords
        smtp.expect("STARTTLS", 503, "5.5.1")
        smtp.expect("MAIL FROM:<a@example.com>", 250, "2.1.0")


def test_relay_port_offers_starttls_and_refuses_plaintext_auth(tls_relay):
    with SMTPConversation(tls_relay.address) as smtp:
        keywords = ehlo_keywords(smtp.ehlo())
        assert "STARTTLS" in keywords
        assert not [k for k in keywords if k.startswith("AUTH")]
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 538, "5.7.11")
        smtp.expect("AUTH LOGIN", 538, "5.7.11")
        smtp.expect("MAIL FROM:<stays@example.com>", 250, "2.1.0")


def test_no_certificate_no_starttls_and_no_auth(lab, petrel_server):
    server = petrel_server({"auth": {"users_file": str(lab["users_file"])}})
    with SMTPConversation(server.address) as smtp:
        keywords = ehlo_keywords(smtp.ehlo())
        assert "STARTTLS" not in keywords and not [k for k in keywords if k.startswith("AUTH")], keywords
        smtp.expect("STARTTLS", 502, "5.5.1")
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 538, "5.7.11")


def test_an_over_long_sasl_response_is_refused_and_the_server_lives_on(tls_relay):
    """A SASL response longer than the line limit once tripped a precondition and killed the process."""
    with SMTPConversation(tls_relay.address, source_address=("127.0.0.10", 0)) as smtp:
        secure(smtp)
        smtp.expect("AUTH PLAIN", 334)
        smtp.expect("A" * 5000, 501, "5.5.2")
        smtp.expect("AUTH LOGIN", 334)
        smtp.expect(b64(USER), 334)
        smtp.expect("B" * 5000, 501, "5.5.2")
        smtp.expect("NOOP", 250, "2.0.0")
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 235, "2.7.0")
    assert tls_relay.process.poll() is None, tls_relay.log_text()[-3000:]


def test_received_header_in_the_queue_names_tls_and_user(tls_relay):
    with SMTPConversation(("127.0.0.1", tls_relay.submission_port)) as smtp:
        version = secure(smtp)
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 235, "2.7.0")
        queue_id = smtp.send_mail("someone@example.com", ["user@hold.test"], simple_message("received header"))
    row = tls_relay.message_row(queue_id)
    trace = bytes(row["trace_headers"]).decode()
    unfolded = " ".join(trace.split())
    assert re.search(rf"Received: from client\.test\.invalid \(\[127\.0\.0\.1\]\) by {re.escape(HOSTNAME)} \(Petrel\) "
                     rf"with ESMTPSA \({re.escape(version)}[^)]*\) \(authenticated as app\) id {queue_id} "
                     rf"for <user@hold\.test>; ", unfolded), trace
    assert row["auth_user"] == USER
    assert row["protocol"] == "ESMTPSA"
    shown = tls_relay.queue_show(queue_id)
    assert shown["auth_user"] == USER and shown["protocol"] == "ESMTPSA"


def test_received_header_says_esmtps_without_auth(tls_relay):
    with SMTPConversation(tls_relay.address) as smtp:
        version = secure(smtp)
        queue_id = smtp.send_mail("a@example.org", ["user@hold.test"], simple_message("esmtps"))
    row = tls_relay.message_row(queue_id)
    trace = " ".join(bytes(row["trace_headers"]).decode().split())
    assert f"with ESMTPS ({version}" in trace and "authenticated" not in trace, trace
    assert row["auth_user"] is None
    [queued] = log_lines(tls_relay, f"{queue_id}: from=<a@example.org>", "status=queued")
    assert "sasl_username" not in queued and f"tls={version}" in queued, queued


def test_allowed_senders_and_relaying_after_auth(tls_relay):
    with SMTPConversation(("127.0.0.1", tls_relay.submission_port)) as smtp:
        secure(smtp)
        smtp.expect("MAIL FROM:<app@example.com>", 530, "5.7.0")
        smtp.expect(f"AUTH PLAIN {plain_response(LIMITED, LIMITED_PASSWORD)}", 235, "2.7.0")
        smtp.expect("MAIL FROM:<other@example.com>", 553, "5.7.1")
        smtp.expect("MAIL FROM:<x@sub.example.org>", 553, "5.7.1")
        smtp.expect("MAIL FROM:<>", 553, "5.7.1")
        smtp.expect("MAIL FROM:<anyone@example.org>", 250, "2.1.0")
        smtp.expect("RSET", 250)
        smtp.expect("MAIL FROM:<App@Example.com>", 250, "2.1.0")
        smtp.expect("RCPT TO:<user@far-away.test>", 250, "2.1.5")


def test_authenticated_client_relays_from_outside_the_relay_networks(tls_relay):
    # The relay's relay_networks is 127.0.0.1/32: 127.0.0.4 is a stranger on port 25 until it logs in.
    with SMTPConversation(tls_relay.address, source_address=("127.0.0.4", 0)) as smtp:
        secure(smtp)
        smtp.expect("MAIL FROM:<whoever@anywhere.test>", 250, "2.1.0")
        smtp.expect("RCPT TO:<user@far-away.test>", 550, "5.7.1")
        smtp.expect("RSET", 250)
        smtp.expect(f"AUTH LOGIN {b64(USER)}", 334)
        smtp.expect(b64(PASSWORD), 235, "2.7.0")
        smtp.expect("MAIL FROM:<whoever@anywhere.test>", 250, "2.1.0")
        smtp.expect("RCPT TO:<user@far-away.test>", 250, "2.1.5")
        smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 503, "5.5.1")


# ---------------------------------------------------------------------------------------------------
# Brute force: a relay of its own, so that 127.0.0.2's throttle touches nothing else


def failing_session(address: tuple, source: str, attempts: int = 3) -> list:
    replies = []
    with SMTPConversation(address, source_address=(source, 0), timeout=15) as smtp:
        secure(smtp)
        for _ in range(attempts):
            reply = smtp.command(f"AUTH PLAIN {plain_response(USER, 'not-the-password')}")
            replies.append(f"{reply.code} {reply.enhanced}")
            if reply.code == 421:
                smtp.wait_for_close()
                break
    return replies


def test_brute_force_is_cut_off_and_throttled(lab, tmp_path):
    relay = start_relay(lab, tmp_path / "relay", relay_config(lab, submission=False))
    try:
        # Four sessions at once from 127.0.0.2, three failures each: 421 after the third, then 12 failures
        # from that address in all.
        results: list = [None] * 4
        def run(index):
            results[index] = failing_session(relay.address, "127.0.0.2")
        threads = [threading.Thread(target=run, args=(index,)) for index in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        for replies in results:
            assert replies is not None and len(replies) == 3, results
            assert replies[2] == "421 4.7.0", results
            assert all(reply in ("535 5.7.8", "454 4.7.0") for reply in replies[:2]), results
        assert any(replies == ["535 5.7.8", "535 5.7.8", "421 4.7.0"] for replies in results), results

        # 127.0.0.2 is throttled now: refused at once, even with the right password.
        with SMTPConversation(relay.address, source_address=("127.0.0.2", 0)) as smtp:
            secure(smtp)
            started = time.monotonic()
            smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 454, "4.7.0")
            assert time.monotonic() - started < 0.9
            smtp.expect("AUTH LOGIN", 334)
            smtp.expect(b64(USER), 334)
            smtp.expect(b64(PASSWORD), 454, "4.7.0")
        # 127.0.0.1 is not.
        with SMTPConversation(relay.address) as smtp:
            secure(smtp)
            smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 235, "2.7.0")
        assert log_lines(relay, "AUTH refused: too many failures", "127.0.0.2")
    finally:
        relay.kill()


def test_a_burst_of_auth_beyond_the_hash_pool_gets_454_and_mail_still_flows(lab, tmp_path):
    """Passwords are checked on two threads of their own with at most 32 checks waiting: a burst of 120 AUTH
    commands sent at once (right passwords, from three addresses under the per-client limit) gets `454 4.7.0`
    (RFC 4954 §6) for those beyond the bound, not counted as failures, while a message is still accepted."""
    relay = start_relay(lab, tmp_path / "relay", relay_config(lab, submission=False))
    try:
        sources = ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        count = 40 * len(sources)
        ready = threading.Barrier(count + 1, timeout=60)
        replies: list = [None] * count
        def run(index):
            with SMTPConversation(relay.address, source_address=(sources[index % len(sources)], 0), timeout=60) as smtp:
                secure(smtp)
                ready.wait()
                reply = smtp.command(f"AUTH PLAIN {plain_response(USER, PASSWORD)}")
                replies[index] = f"{reply.code} {reply.enhanced}"
        threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
        for thread in threads:
            thread.start()
        ready.wait()
        # While the checks queue, the spool and the queue go on: a message is accepted promptly.
        started = time.monotonic()
        with SMTPConversation(relay.address) as smtp:
            smtp.expect("EHLO burst.test", 250)
            smtp.expect("MAIL FROM:<a@example.org>", 250)
            smtp.expect("RCPT TO:<user@hold.test>", 250)
            smtp.expect("DATA", 354)
            smtp.send(simple_message("during the burst", body="x" * (300 * 1024) + "\r\n") + b".\r\n")
            assert smtp.read_reply().code == 250
        assert time.monotonic() - started < 5
        for thread in threads:
            thread.join(timeout=60)
        assert all(reply in ("235 2.7.0", "454 4.7.0") for reply in replies), replies
        assert replies.count("454 4.7.0") > 0, replies
        assert replies.count("235 2.7.0") >= 2, replies
        assert log_lines(relay, "AUTH refused: the password checks are saturated")
        # Nothing was counted against the addresses: each still authenticates at once.
        for source in sources:
            with SMTPConversation(relay.address, source_address=(source, 0)) as smtp:
                secure(smtp)
                smtp.expect(f"AUTH PLAIN {plain_response(USER, PASSWORD)}", 235, "2.7.0")
    finally:
        relay.kill()


# ---------------------------------------------------------------------------------------------------
# petrel user


def test_petrel_user_add_list_remove(tmp_path):
    config = tmp_path / "petrel.toml"
    config.write_text('[auth]\nusers_file = "data/users"\n')
    users = tmp_path / "data" / "users"

    result = add_user(config, "bob", "pass word", stdin_suffix="\n")
    assert result.returncode == 0, result.stderr
    assert "bob: added" in result.stdout
    result = add_user(config, "carol", "crlf", allowed=" carol@example.com , @Example.NET ", stdin_suffix="\r\n")
    assert result.returncode == 0, result.stderr
    assert users.stat().st_mode & 0o777 == 0o600

    lines = [line for line in users.read_text().splitlines() if not line.startswith("#")]
    assert len(lines) == 2
    entries = {line.split(":")[0]: line.split(":") for line in lines}
    assert entries["bob"][1].startswith("$y$") and entries["bob"][2] == ""
    assert entries["carol"][2] == "carol@example.com,@example.net"
    assert "pass word" not in users.read_text()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            import crypt  # the system's libcrypt, outside petrel: the newline and CR were stripped
        except ImportError:
            crypt = None
    if crypt is not None:
        assert crypt.crypt("pass word", entries["bob"][1]) == entries["bob"][1]
        assert crypt.crypt("crlf", entries["carol"][1]) == entries["carol"][1]

    result = run_petrel("user", "list", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["bob\t(any sender)", "carol\tcarol@example.com,@example.net"]
    result = run_petrel("user", "list", "--json", "--config", str(config))
    assert json.loads(result.stdout) == [{"name": "bob", "allowed_senders": ""},
                                         {"name": "carol", "allowed_senders": "carol@example.com,@example.net"}]

    # Adding again changes the password and keeps the senders unless given.
    old_hash = entries["carol"][1]
    assert add_user(config, "carol", "new one").returncode == 0
    carol = [line for line in users.read_text().splitlines() if line.startswith("carol:")][0].split(":")
    assert carol[1] != old_hash and carol[2] == "carol@example.com,@example.net"
    assert "carol: updated" in add_user(config, "carol", "newer").stdout

    result = run_petrel("user", "remove", "bob", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert json.loads(run_petrel("user", "list", "--json", "--config", str(config)).stdout) == [
        {"name": "carol", "allowed_senders": "carol@example.com,@example.net"}]
    result = run_petrel("user", "remove", "bob", "--config", str(config))
    assert result.returncode != 0 and "no user bob" in result.stderr
    assert users.stat().st_mode & 0o777 == 0o600

    # Refusals: an empty password, a bad name, no terminal without --password-stdin.
    assert add_user(config, "dave", "").returncode != 0
    assert add_user(config, "da:ve", "pw").returncode != 0
    assert add_user(config, "da ve", "pw").returncode != 0
    result = petrel_with_input(["user", "add", "erin", "--config", str(config)], "pw\n")
    assert result.returncode != 0 and "--password-stdin" in result.stderr
    assert [line.split(":")[0] for line in users.read_text().splitlines() if not line.startswith("#")] == ["carol"]


# ---------------------------------------------------------------------------------------------------
# Delivery: opportunistic STARTTLS, smarthost AUTH, required TLS


def submit(server: PetrelServer, recipient: str, subject: str, sender: str = "sender@example.org") -> str:
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        return smtp.send_mail(sender, [recipient], simple_message(subject))


def messages_with(sink: SMTPSink, subject: str) -> list:
    return [message for message in sink.snapshot() if message.header("Subject") == subject]


def test_delivery_uses_starttls_when_the_destination_offers_it(tls_relay, lab):
    sink = lab["sinks"]["tls"]
    queue_id = submit(tls_relay, "user@tls-dest.test", "encrypted delivery")
    [message] = wait_until(lambda: messages_with(sink, "encrypted delivery"), WAIT, "encrypted delivery", tls_relay)
    assert sink.tls_of(message) in ("TLSv1.2", "TLSv1.3")
    commands = sink.commands_of(message.connection)
    assert commands[:3] == [f"EHLO {HOSTNAME}", "STARTTLS", f"EHLO {HOSTNAME}"], commands
    assert not sink.early_bytes
    line = wait_for_delivery_line(tls_relay, queue_id, "sent")
    assert f"tls={sink.tls_of(message)}" in line, line


def test_failed_handshake_falls_back_to_plaintext(tls_relay, lab):
    sink = lab["sinks"]["broken"]
    queue_id = submit(tls_relay, "user@broken-tls.test", "plaintext after a broken handshake")
    [message] = wait_until(lambda: messages_with(sink, "plaintext after a broken handshake"), WAIT,
                           "delivery in plaintext", tls_relay)
    assert sink.handshake_failures, "the handshake was never tried"
    assert sink.tls_of(message) is None
    # The retry did not even try STARTTLS again (the host is remembered).
    assert "STARTTLS" not in sink.commands_of(message.connection)
    assert log_lines(tls_relay, queue_id, "127.0.0.6", "retrying in plaintext"), tls_relay.log_text()[-3000:]
    line = wait_for_delivery_line(tls_relay, queue_id, "sent")
    assert "tls=" not in line, line


def test_smarthost_gets_auth_over_opportunistic_tls(lab, tmp_path):
    sink = TLSSink("127.0.0.7", free_port("127.0.0.7"), "auth-smarthost.test", lab["certificate"], lab["key"],
                   credentials={SMARTHOST_USER: SMARTHOST_PASSWORD}).start()
    folder = tmp_path / "relay"
    folder.mkdir()
    (folder / "smarthost-password").write_text(SMARTHOST_PASSWORD + "\nsecond line ignored\n")
    relay = start_relay(lab, folder, relay_config(lab, submission=False, delivery={
        "smarthost": f"127.0.0.7:{sink.port}", "smarthost_user": SMARTHOST_USER,
        "smarthost_password_file": "smarthost-password", "smarthost_tls": "opportunistic"}))
    try:
        queue_id = submit(relay, "user@far.test", "via an authenticating smarthost")
        [message] = wait_until(lambda: messages_with(sink, "via an authenticating smarthost"), WAIT,
                               "delivery to the smarthost", relay)
        assert sink.tls_of(message) in ("TLSv1.2", "TLSv1.3")
        assert (message.connection, "PLAIN", SMARTHOST_USER, True) in sink.logins
        assert not [login for login in sink.logins if not login[3]]
        commands = sink.commands_of(message.connection)
        assert commands[:3] == [f"EHLO {HOSTNAME}", "STARTTLS", f"EHLO {HOSTNAME}"], commands
        assert commands[3].startswith("AUTH PLAIN "), commands
        line = wait_for_delivery_line(relay, queue_id, "sent")
        assert f"tls={sink.tls_of(message)}" in line, line
        log = relay.log_text()
        assert SMARTHOST_PASSWORD not in log and plain_response(SMARTHOST_USER, SMARTHOST_PASSWORD) not in log
    finally:
        relay.kill()
        sink.stop()


def test_required_tls_with_an_untrusted_certificate_sends_nothing(lab, tmp_path):
    sink = TLSSink("127.0.0.8", free_port("127.0.0.8"), "untrusted-smarthost.test", lab["certificate"], lab["key"],
                   credentials={SMARTHOST_USER: SMARTHOST_PASSWORD}).start()
    folder = tmp_path / "relay"
    folder.mkdir()
    (folder / "smarthost-password").write_text(SMARTHOST_PASSWORD + "\n")
    # smarthost_tls is not set: with smarthost_user, "required" is the default.
    relay = start_relay(lab, folder, relay_config(lab, submission=False, delivery={
        "smarthost": f"127.0.0.8:{sink.port}", "smarthost_user": SMARTHOST_USER,
        "smarthost_password_file": "smarthost-password"}))
    try:
        queue_id = submit(relay, "user@far.test", "never in plaintext")
        wait_for_delivery_line(relay, queue_id, "deferred")
        sink.wait_for(lambda: len(sink.handshake_failures) >= 2, WAIT, "a second refused handshake (the retry)")
        assert not sink.handshakes, "a handshake with an untrusted certificate succeeded"
        assert not sink.messages and not sink.logins
        verbs = {command.line.split(" ", 1)[0].upper() for command in sink.commands}
        assert verbs <= {"EHLO", "STARTTLS", "QUIT"}, [command.line for command in sink.commands]
        message = relay.queue_show(queue_id)
        assert message is not None
        assert message["recipients"][0]["state"] != "sent"
        assert message["recipients"][0]["attempts"] >= 1
        # The failed handshake is the relay's own error, not a reply of the smarthost.
        recipient = message["recipients"][0]
        assert recipient["last_reply"] is None and recipient["last_relay"] is None, recipient
        assert "127.0.0.8" in recipient["last_error"] and "TLS" in recipient["last_error"], recipient
        assert not log_lines(relay, "retrying in plaintext")
        assert SMARTHOST_PASSWORD not in relay.log_text()
    finally:
        relay.kill()
        sink.stop()


def test_required_tls_verifies_against_tls_ca_file(lab, tmp_path):
    """`delivery.tls_ca_file` names the CA that signs a private next hop's certificate (here the certificate
    itself): under `required` the handshake verifies and the message goes."""
    sink = TLSSink("127.0.0.1", free_port("127.0.0.1"), "private-smarthost.test", lab["certificate"], lab["key"]).start()
    folder = tmp_path / "relay"
    folder.mkdir()
    relay = start_relay(lab, folder, relay_config(lab, submission=False, delivery={
        "smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "required", "tls_ca_file": str(lab["certificate"])}))
    try:
        queue_id = submit(relay, "user@far.test", "verified by a private CA")
        [message] = wait_until(lambda: messages_with(sink, "verified by a private CA"), WAIT, "delivery over verified TLS", relay)
        assert sink.tls_of(message) in ("TLSv1.2", "TLSv1.3")
        line = wait_for_delivery_line(relay, queue_id, "sent")
        assert f"tls={sink.tls_of(message)}" in line, line
    finally:
        relay.kill()
        sink.stop()


def test_smarthost_credentials_never_follow_a_plaintext_fallback(lab, tmp_path):
    """Opportunistic TLS falls back to plaintext after a broken handshake, but the smarthost credentials
    never go along: the message waits instead."""
    sink = TLSSink("127.0.0.9", free_port("127.0.0.9"), "broken-smarthost.test", lab["certificate"], lab["key"],
                   credentials={SMARTHOST_USER: SMARTHOST_PASSWORD}, break_handshake=True).start()
    folder = tmp_path / "relay"
    folder.mkdir()
    (folder / "smarthost-password").write_text(SMARTHOST_PASSWORD + "\n")
    relay = start_relay(lab, folder, relay_config(lab, submission=False, delivery={
        "smarthost": f"127.0.0.9:{sink.port}", "smarthost_user": SMARTHOST_USER,
        "smarthost_password_file": "smarthost-password", "smarthost_tls": "opportunistic"}))
    try:
        queue_id = submit(relay, "user@far.test", "credentials stay home")
        wait_for_delivery_line(relay, queue_id, "deferred")
        assert log_lines(relay, queue_id, "retrying in plaintext")
        sink.wait_for(lambda: sink.connections >= 2, WAIT, "the plaintext retry")
        verbs = {command.line.split(" ", 1)[0].upper() for command in sink.commands}
        assert verbs <= {"EHLO", "STARTTLS", "QUIT"}, [command.line for command in sink.commands]
        assert not sink.messages and not sink.logins
        log = relay.log_text()
        assert SMARTHOST_PASSWORD not in log and plain_response(SMARTHOST_USER, SMARTHOST_PASSWORD) not in log
    finally:
        relay.kill()
        sink.stop()
