"""Logs on standard error: `[log] format = "json"` gives one JSON object per line with the Postfix-style
fields of the message as fields; the human format lets `grep QUEUE_ID` tell a message's story. Delivery
goes to a small SMTP sink in this file, configured as the smarthost."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import SMTPConversation, simple_message
from dns_server import DnsmasqServer, a, find_dnsmasq

RFC3339_MS_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HUMAN_LINE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z) (trace|debug|info|notice|warning|error|critical) ")

# Replies with commas, `=` and parentheses inside, which the field parser must keep whole.
DATA_REPLY = "250 2.0.0 Ok: queued as 4F2A (id=7, size=3)"
UNKNOWN_USER_REPLY = "550 5.1.1 <nobody@dest.test>: Recipient address rejected (user unknown, see https://x.test/?a=b)"
# A reply that tries to close the parentheses, add fields and, with a bare CR (a line break to many readers),
# start a line of its own. The log is rendered from typed events: none of it becomes a field or a line.
HOSTILE_REPLY = ("550 5.7.1 <hostile@dest.test>: no), status=sent, relay=evil (x"
                 "\r2025-01-01T00:00:00.000Z info petrel: [Delivery] 65SHN2V1Q8K0TZ: to=<forged@x.test>, status=sent (, injected=1")
HOSTILE_REPLY_IN_HUMAN_LINE = ("(550 5.7.1 <hostile@dest.test>: no\\), status=sent, relay=evil \\(x"
                               "\\x0D2025-01-01T00:00:00.000Z info petrel: [Delivery] 65SHN2V1Q8K0TZ: to=<forged@x.test>, status=sent \\(, injected=1)")


class TinySink:
    """A destination SMTP server: greets, answers EHLO, MAIL, RCPT, DATA, RSET, NOOP and QUIT one line at a
    time, refuses RCPT to nobody@dest.test, and records each message's recipients."""

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.messages: list[list[str]] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                connection, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, connection: socket.socket):
        connection.settimeout(0.2)
        buffer = b""
        recipients: list[str] = []

        def reply(line: str):
            connection.sendall(line.encode() + b"\r\n")

        def read_until(marker: bytes) -> bytes | None:
            nonlocal buffer
            deadline = time.monotonic() + 30
            while marker not in buffer:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    return None
                try:
                    chunk = connection.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return None
                buffer += chunk
            item, buffer = buffer.split(marker, 1)
            return item

        try:
            reply("220 sink.test ESMTP")
            while True:
                line = read_until(b"\r\n")
                if line is None:
                    return
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    reply("250-sink.test\r\n250 8BITMIME" if verb == b"EHLO" else "250 sink.test")
                elif verb == b"MAIL":
                    recipients = []
                    reply("250 2.1.0 Ok")
                elif verb == b"RCPT":
                    address = line.decode().split(":", 1)[1].strip().split(">")[0].lstrip("<")
                    if address == "nobody@dest.test":
                        reply(UNKNOWN_USER_REPLY)
                    elif address == "hostile@dest.test":
                        reply(HOSTILE_REPLY)
                    else:
                        recipients.append(address)
                        reply("250 2.1.5 Ok")
                elif verb == b"DATA":
                    reply("354 End data with <CR><LF>.<CR><LF>")
                    if read_until(b"\r\n.\r\n") is None:
                        return
                    with self.lock:
                        self.messages.append(recipients)
                    reply(DATA_REPLY)
                elif verb == b"QUIT":
                    reply("221 2.0.0 Bye")
                    return
                else:
                    reply("250 2.0.0 Ok")
        except OSError:
            return
        finally:
            connection.close()

    def stop(self):
        self.stopping.set()
        self.listener.close()
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def sink():
    sink = TinySink()
    yield sink
    sink.stop()


def wait_for_log(server, predicate, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = server.log_text()
        if predicate(text):
            return text
        time.sleep(0.1)
    raise AssertionError(f"the log did not show what was expected within {timeout}s:\n{server.log_text()}")


def send(server, recipients, subject="logging test") -> str:
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", recipients, simple_message(subject))
        smtp.command("QUIT")
    return queue_id


def json_lines(text: str) -> list[dict]:
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise AssertionError(f"line {number} is not JSON ({error}): {line!r}") from None
        assert isinstance(record, dict), f"line {number} is not an object: {line!r}"
        records.append(record)
    return records


def test_json_logs_are_one_object_per_line_with_message_fields(petrel_server, sink):
    server = petrel_server({
        "log": {"format": "json"},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"},
    })
    # Concurrent sessions and deliveries log from many threads at once: no line may be cut or mixed.
    with ThreadPoolExecutor(max_workers=10) as pool:
        queue_ids = list(pool.map(lambda n: send(server, ["ok@dest.test"], f"concurrent {n}"), range(20)))
    mixed = send(server, ["ok@dest.test", "nobody@dest.test", "hostile@dest.test"], "one good, one unknown, one hostile")
    wait_for_log(server, lambda text: text.count('"status":"sent"') >= 21 and text.count('"status":"bounced"') >= 2)
    assert server.stop() == 0

    records = json_lines(server.log_text())
    for record in records:
        for key in ("ts", "level", "label", "msg"):
            assert key in record, f"no {key!r} in {record}"
        assert RFC3339_MS_UTC.match(record["ts"]), record
        assert record["level"] in ("trace", "debug", "info", "notice", "warning", "error", "critical"), record
        assert all(isinstance(value, str) for value in record.values()), f"a field is not a string: {record}"
    # The logger made before the configuration was read follows it too.
    assert any(record["msg"] == "petrel starting" for record in records)

    def find(queue_id, **fields):
        found = [r for r in records if r.get("queue_id") == queue_id and all(r.get(k) == v for k, v in fields.items())]
        assert len(found) == 1, f"{len(found)} lines for {queue_id} with {fields}: {[r for r in records if r.get('queue_id') == queue_id]}"
        return found[0]

    for queue_id in queue_ids + [mixed]:
        queued = find(queue_id, status="queued")
        assert queued["from"] == "a@example.org"
        assert queued["msg"].startswith(f"{queue_id}: from=<a@example.org>")
        assert "127.0.0.1" in queued["client"]
        assert queued["helo"] == "client.test.invalid"

    sent = find(mixed, to="ok@dest.test")
    assert sent["status"] == "sent"
    assert sent["dsn"] == "2.0.0"
    assert str(sink.port) in sent["relay"]
    assert sent["attempts"] == "1"
    assert float(sent["delay"]) >= 0
    assert sent["reply"] == DATA_REPLY

    bounced = find(mixed, to="nobody@dest.test")
    assert bounced["status"] == "bounced"
    assert bounced["dsn"] == "5.1.1"
    assert bounced["reply"] == UNKNOWN_USER_REPLY

    # The hostile reply is one plain string: no field of its own, nothing changed around it.
    hostile = find(mixed, to="hostile@dest.test")
    assert hostile["status"] == "bounced" and hostile["dsn"] == "5.7.1", hostile
    assert hostile["reply"] == HOSTILE_REPLY
    assert str(sink.port) in hostile["relay"]
    assert "injected" not in hostile and "meta.status" not in hostile, hostile
    assert not [r for r in records if r.get("to") == "forged@x.test" or r.get("queue_id") == "65SHN2V1Q8K0TZ"]
    assert hostile["msg"].endswith(HOSTILE_REPLY_IN_HUMAN_LINE), hostile["msg"]

    assert sorted(len(message) for message in sink.messages).count(1) >= 21


def test_json_null_sender_is_an_empty_from(petrel_server, sink):
    server = petrel_server({
        "log": {"format": "json"},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"},
    })
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("", ["r@example.com"], simple_message("a bounce"))
    wait_for_log(server, lambda text: queue_id in text)
    assert server.stop() == 0
    text = server.log_text()
    queued = [r for r in json_lines(text) if r.get("queue_id") == queue_id and r.get("status") == "queued"]
    assert len(queued) == 1, text
    assert queued[0]["from"] == ""
    assert queued[0]["nrcpt"] == "1"


def test_human_logs_tell_a_message_story_by_queue_id(petrel_server, sink):
    server = petrel_server({"delivery": {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"}})
    queue_id = send(server, ["ok@dest.test"])
    wait_for_log(server, lambda text: "status=sent" in text)
    assert server.stop() == 0

    lines = server.log_text().splitlines()
    for line in lines:
        assert HUMAN_LINE.match(line), f"not a human log line: {line!r}"
    story = [line for line in lines if queue_id in line]
    assert len(story) >= 2, "\n".join(lines)
    assert f"{queue_id}: from=<a@example.org>" in story[0] and "status=queued" in story[0], story
    delivered = [index for index, line in enumerate(story) if "to=<ok@dest.test>" in line and "status=sent" in line]
    assert delivered and delivered[0] > 0, story
    assert f"dsn=2.0.0, status=sent ({DATA_REPLY})" in story[delivered[0]]


def test_human_logs_escape_a_hostile_reply(petrel_server, sink):
    """Remote text can neither start a line (a bare CR is written \\x0D) nor close its parentheses to add
    fields (an unpaired parenthesis is written with a backslash), so grep finds no forged status."""
    server = petrel_server({"delivery": {"smarthost": f"127.0.0.1:{sink.port}", "smarthost_tls": "none"}})
    queue_id = send(server, ["hostile@dest.test"])
    wait_for_log(server, lambda text: "status=bounced" in text)
    assert server.stop() == 0

    text = server.log_text()
    assert "\r" not in text
    lines = text.splitlines()
    for line in lines:
        assert HUMAN_LINE.match(line), f"not a human log line: {line!r}"
    [bounced] = [line for line in lines if f"{queue_id}: to=<hostile@dest.test>" in line]
    assert ", dsn=5.7.1, status=bounced " + HOSTILE_REPLY_IN_HUMAN_LINE in bounced, bounced
    assert bounced.endswith(HOSTILE_REPLY_IN_HUMAN_LINE), bounced
    assert len([line for line in lines if "forged@x.test" in line]) == 1
    assert not [line for line in lines if queue_id in line and "status=sent" in line.split(" (", 1)[0]]


@pytest.mark.skipif(find_dnsmasq() is None, reason="dnsmasq is not installed (scripts/install-test-deps)")
@pytest.mark.parametrize("records,client", [
    ([], "unknown[127.0.0.1]"),
    # host-record publishes both vm.test -> 127.0.0.1 and the PTR record 127.0.0.1 -> vm.test.
    ([a("vm.test", "127.0.0.1")], "vm.test[127.0.0.1]"),
    # A PTR record whose name does not resolve back to the client proves nothing.
    (["--ptr-record=1.0.0.127.in-addr.arpa,liar.test", a("liar.test", "192.0.2.1")], "unknown[127.0.0.1]"),
], ids=["no-PTR", "forward-confirmed", "not-confirmed"])
def test_the_log_names_the_client_by_its_verified_name_and_the_helo_apart(petrel_server, tmp_path, records, client):
    """Postfix's `client=name[address]`: the name is the forward-confirmed reverse DNS name, or `unknown`; the
    EHLO name is `helo=`. The `Received:` field's TCP-info carries the same name."""
    dns = DnsmasqServer(tmp_path / "dns", records).start()
    try:
        server = petrel_server({"delivery": {"dns_servers": [dns.address]}})
        with SMTPConversation(server.address) as smtp:
            smtp.ehlo("vm")
            time.sleep(0.3)  # the lookup runs beside the session, which never waits for it
            queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
        text = wait_for_log(server, lambda text: queue_id in text)
        [queued] = [line for line in text.splitlines() if f"{queue_id}: from=" in line]
        assert f", client={client}, helo=vm," in queued, queued
        trace, _ = server.stored_parts(queue_id)
        name = client.split("[")[0]
        expected = b"([127.0.0.1])" if name == "unknown" else f"({name} [127.0.0.1])".encode()
        assert trace.startswith(b"Received: from vm " + expected), trace
    finally:
        dns.stop()
