"""End-to-end delivery: the real `petrel serve` accepts mail and delivers it through real DNS (dnsmasq)
to scriptable SMTP sinks on 127.0.0.x, all on loopback.

Every test gets a `lab`: a dnsmasq with the test's records, sinks that all listen on one port P
(petrel's `delivery.mx_port`), each on its own 127.0.0.x, and a relay configured with short timers
(retry 1s-2s, timeouts of a few seconds). The sender's domain, sender.test, always has its own MX sink,
so bounces can be caught and parsed.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import pytest

from conftest import wait_until as conftest_wait_until
from conftest import HOSTNAME, PetrelServer, SMTPConversation, free_port, loopback_alias_usable, queue_id_of
from dns_server import DnsmasqServer, a, find_dnsmasq, mx, null_mx
from smtp_sink import SMTPSink

SENDER = "sender@sender.test"
SENDER_MX = ("mx.sender.test", "127.0.0.20")
WAIT = 10.0  # the bound on every "it happens soon" wait

pytestmark = [
    pytest.mark.skipif(find_dnsmasq() is None, reason="dnsmasq is not installed (scripts/install-test-deps)"),
    pytest.mark.skipif(not loopback_alias_usable("127.0.0.20"), reason="127.0.0.x addresses are not usable"),
]


# ---------------------------------------------------------------------------------------------------
# Log lines: "QUEUEID: to=<bob@x.test>, relay=mx.x.test[127.0.0.3]:2526, delay=0.1, attempts=1,
#             dsn=2.0.0, status=sent (250 2.0.0 Ok)"

LOG_LINE = re.compile(
    r"(?P<queue_id>[0-9A-Z]{14}): to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+), delay=(?P<delay>[0-9.]+), "
    r"attempts=(?P<attempts>\d+), dsn=(?P<dsn>[0-9.]+), status=(?P<status>[a-z]+) \((?P<reply>.*)\)\s*$"
)


@dataclass
class DeliveryLine:
    queue_id: str
    to: str
    relay: str
    attempts: int
    dsn: str
    status: str
    reply: str
    text: str


def delivery_lines(server: PetrelServer, queue_id: Optional[str] = None) -> list:
    lines = []
    for text in server.log_text().splitlines():
        match = LOG_LINE.search(text)
        if match and (queue_id is None or match["queue_id"] == queue_id):
            lines.append(DeliveryLine(match["queue_id"], match["to"], match["relay"], int(match["attempts"]),
                                      match["dsn"], match["status"], match["reply"], text))
    return lines


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, what: str = "condition",
               server: Optional[PetrelServer] = None, interval: float = 0.05):
    return conftest_wait_until(predicate, timeout, what, interval=interval,
                               detail=(lambda: relay_state(server)) if server is not None else None)


def wait_for_line(server: PetrelServer, queue_id: str, status: str, to: Optional[str] = None,
                  timeout: float = WAIT) -> DeliveryLine:
    def find():
        for line in delivery_lines(server, queue_id):
            if line.status == status and (to is None or line.to == to):
                return line
        return None
    return wait_until(find, timeout, f"'{queue_id}: to=<{to or '*'}> ... status={status}' log line", server)


def wait_until_gone(server: PetrelServer, queue_id: str, timeout: float = WAIT) -> None:
    wait_until(lambda: server.queue_show(queue_id) is None, timeout, f"removal of {queue_id} from the queue",
               server, interval=0.1)


def relay_state(server: PetrelServer) -> str:
    """Whether the relay still runs, and its log: the log lines proper (a crash's backtrace shortened to
    the crashed thread's first frames)."""
    code = server.process.poll() if server.process is not None else None
    status = "running" if code is None else f"EXITED with {code}"
    lines = server.log_text().splitlines()
    shown, skipping, crashed = [], False, 0
    for line in lines:
        if line.startswith("*** Signal") or line.startswith("*** Program crashed"):
            skipping = True
        if skipping and line.startswith("Thread") and line.endswith(" crashed:"):
            crashed = 14
        if not skipping or crashed > 0 or " info " in line or " notice " in line or " error " in line:
            shown.append(line[:300])
            crashed -= 1 if crashed > 0 else 0
        if " info " in line and "petrel starting" in line:
            skipping = False
    return f"petrel is {status}\n--- petrel log ---\n" + "\n".join(shown[-80:])


def wait_for_messages(sink: SMTPSink, count: int, relay: PetrelServer, timeout: float = WAIT) -> list:
    """The sink's messages once it has `count`; on timeout, the failure shows the relay's state and log."""
    try:
        return sink.wait_for_messages(count, timeout=timeout)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{relay_state(relay)}") from None


def one_line(value: Optional[str]) -> str:
    return " ".join((value or "").split())


# ---------------------------------------------------------------------------------------------------
# Messages


_subjects = itertools.count(1)


def make_message(subject: str, sender: str = SENDER, to: str = "user@dest.test") -> bytes:
    return (
        f"From: <{sender or 'nobody@sender.test'}>\r\nTo: <{to}>\r\nSubject: {subject}\r\n"
        f"Date: Mon, 02 Jan 2023 03:04:05 +0000\r\nMessage-ID: <{subject.replace(' ', '-')}@sender.test>\r\n"
        f"\r\nHello from the delivery tests.\r\n.A line that starts with a dot.\r\n"
    ).encode()


def submit(server: PetrelServer, recipients, sender: str = SENDER, subject: Optional[str] = None) -> tuple:
    """Sends one message to the relay; returns (queue id, subject)."""
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    subject = subject or f"delivery test {next(_subjects)}"
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail(sender, recipients, make_message(subject, sender, recipients[0]))
        smtp.command("QUIT")
    return queue_id, subject


def subjects(messages) -> list:
    return [message.header("Subject") for message in messages]


# ---------------------------------------------------------------------------------------------------
# Delivery status notifications


@dataclass
class Report:
    message: email.message.Message
    per_message: email.message.Message
    recipients: list  # one email.message.Message per recipient block

    def recipient(self, address: str) -> email.message.Message:
        for block in self.recipients:
            if one_line(block["Final-Recipient"]).lower() == f"rfc822; {address}".lower():
                return block
        raise AssertionError(f"no Final-Recipient {address} in {[b['Final-Recipient'] for b in self.recipients]}")


def parse_report(text: bytes) -> Report:
    message = email.message_from_bytes(text, policy=email.policy.compat32)
    assert message.get_content_type() == "multipart/report", message.get_content_type()
    assert message.get_param("report-type") == "delivery-status", message["Content-Type"]
    parts = message.get_payload()
    assert isinstance(parts, list) and len(parts) == 3, f"expected 3 parts, got {parts!r}"
    assert parts[0].get_content_type() == "text/plain"
    status = parts[1]
    assert status.get_content_type() == "message/delivery-status", status.get_content_type()
    blocks = status.get_payload()
    assert isinstance(blocks, list) and len(blocks) >= 2, f"delivery-status blocks: {blocks!r}"
    assert parts[2].get_content_type() in ("text/rfc822-headers", "message/rfc822"), parts[2].get_content_type()
    return Report(message, blocks[0], blocks[1:])


# ---------------------------------------------------------------------------------------------------
# The lab


class DeliveryLab:
    def __init__(self, folder):
        self.folder = folder
        self.mx_port = free_port("127.0.0.1")
        self.sinks: list = []
        self.dns_servers: list = []
        self.relays: list = []
        self.sender_sink = self.sink(SENDER_MX[1], SENDER_MX[0])

    def sink(self, address: str, name: str) -> SMTPSink:
        sink = SMTPSink(address, self.mx_port, name=name).start()
        self.sinks.append(sink)
        return sink

    def relay(self, records=(), delivery: Optional[dict] = None, routes: Optional[dict] = None) -> PetrelServer:
        dns = DnsmasqServer(self.folder / f"dns{len(self.dns_servers)}",
                            [mx("sender.test", SENDER_MX[0], 10), a(*SENDER_MX), *records])
        self.dns_servers.append(dns)
        dns.start()
        settings = {
            "dns_servers": [dns.address],
            "mx_port": self.mx_port,
            "retry_min": "1s",
            "retry_max": "2s",
            "connect_timeout": "2s",
            "command_timeout": "3s",
            "data_timeout": "3s",
        }
        settings.update(delivery or {})
        config = {"delivery": settings}
        if routes:
            config["routes"] = dict(routes)
        server = PetrelServer(self.folder / f"relay{len(self.relays)}", config)
        self.relays.append(server)
        return server.start()

    def close(self) -> None:
        # SIGKILL, not SIGTERM: graceful shutdown is test_shutdown.py's business, and these relays may be
        # mid-retry against sinks that are about to go away.
        for relay in self.relays:
            relay.kill()
        for sink in self.sinks:
            sink.stop()
        for dns in self.dns_servers:
            dns.stop()


@pytest.fixture
def lab(tmp_path):
    lab = DeliveryLab(tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def dest_records(*hosts) -> list:
    """MX records for dest.test: each host is (name, address, preference)."""
    records = []
    for name, address, preference in hosts:
        records += [mx("dest.test", name, preference), a(name, address)]
    return records


# ---------------------------------------------------------------------------------------------------
# 1. The basic path


def test_swaks_message_is_delivered_to_the_mx_and_leaves_the_queue(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))

    result = subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{relay.port}", "--timeout", "10", "--from", SENDER,
         "--to", "user@dest.test", "--header", "Subject: swaks end to end"],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    queue_id = queue_id_of(result.stdout)

    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert message.mail_from == SENDER
    assert message.recipients == ["user@dest.test"]
    assert message.helo == HOSTNAME
    parsed = message.parsed()
    assert parsed["Subject"] == "swaks end to end"
    received = one_line(parsed.get_all("Received")[0])
    assert f"by {HOSTNAME} (Petrel)" in received and f"id {queue_id}" in received, received

    wait_until_gone(relay, queue_id)
    [line] = [line for line in delivery_lines(relay, queue_id)]
    assert line.status == "sent", line.text
    assert line.to == "user@dest.test"
    assert line.relay == f"mx.dest.test[127.0.0.3]:{lab.mx_port}", line.text
    assert line.attempts == 1 and line.dsn == "2.0.0", line.text
    assert line.reply.startswith("250"), line.text
    assert dest.connections == 1
    assert lab.sender_sink.snapshot() == [], "no notification was asked for"


# ---------------------------------------------------------------------------------------------------
# 2. MX preference and failover


def test_mx_failover_when_the_preferred_mx_refuses_connections(lab):
    # mx1 (preference 10) is 127.0.0.2:P where nothing listens; mx2 (preference 20) takes the mail.
    backup = lab.sink("127.0.0.3", "mx2.dest.test")
    relay = lab.relay(dest_records(("mx1.dest.test", "127.0.0.2", 10), ("mx2.dest.test", "127.0.0.3", 20)))

    queue_id, subject = submit(relay, "user@dest.test")
    [message] = wait_for_messages(backup, 1, relay, timeout=WAIT)
    assert message.header("Subject") == subject
    line = wait_for_line(relay, queue_id, "sent")
    assert line.relay == f"mx2.dest.test[127.0.0.3]:{lab.mx_port}", line.text
    assert line.attempts == 1, line.text
    wait_until_gone(relay, queue_id)


def test_mx_failover_when_the_preferred_mx_never_answers_ehlo(lab):
    hanging = lab.sink("127.0.0.4", "mx1.dest.test")
    hanging.hang_after_greeting = True
    backup = lab.sink("127.0.0.5", "mx2.dest.test")
    relay = lab.relay(dest_records(("mx1.dest.test", "127.0.0.4", 10), ("mx2.dest.test", "127.0.0.5", 20)),
                      delivery={"command_timeout": "2s"})

    started = time.monotonic()
    queue_id, subject = submit(relay, "user@dest.test")
    [message] = wait_for_messages(backup, 1, relay, timeout=WAIT)
    elapsed = time.monotonic() - started
    assert message.header("Subject") == subject
    assert hanging.connections >= 1
    assert any(command.line.upper().startswith("EHLO") for command in hanging.commands), hanging.commands
    assert hanging.snapshot() == []
    assert elapsed >= 1.5, f"delivered after {elapsed:.1f}s: the 2s command timeout on mx1 cannot have run out"
    line = wait_for_line(relay, queue_id, "sent")
    assert line.relay == f"mx2.dest.test[127.0.0.5]:{lab.mx_port}", line.text
    assert line.attempts == 1, line.text
    wait_until_gone(relay, queue_id)


# ---------------------------------------------------------------------------------------------------
# 3. A temporary failure, then success on retry


def test_451_is_retried_and_then_delivered(lab):
    # With the lab's command_timeout of 3s, the retry reuses the connection that was cached after the
    # first attempt while its read timer has run out in the cache: the retry must still succeed (on that
    # connection or a fresh one), and the relay must certainly not crash.
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    accept = threading.Event()
    dest.rcpt_reply = lambda address, attempt: None if accept.is_set() else "451 4.7.1 Greylisted, try again later"
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))

    queue_id, subject = submit(relay, "user@dest.test")
    deferred = wait_for_line(relay, queue_id, "deferred")
    assert deferred.attempts == 1 and deferred.dsn == "4.7.1", deferred.text
    assert deferred.relay == f"mx.dest.test[127.0.0.3]:{lab.mx_port}", deferred.text
    assert "Greylisted" in deferred.reply, deferred.text

    shown = relay.queue_show(queue_id)
    assert shown is not None, "a deferred message must stay in the queue"
    [recipient] = shown["recipients"]
    assert recipient["state"] == "deferred", recipient
    assert recipient["attempts"] >= 1, recipient
    assert "451" in (recipient["last_reply"] or "") and "Greylisted" in recipient["last_reply"], recipient
    assert "127.0.0.3" in (recipient["last_relay"] or ""), recipient
    assert dest.snapshot() == []

    accept.set()
    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert message.header("Subject") == subject
    sent = wait_for_line(relay, queue_id, "sent")
    assert sent.attempts >= 2, sent.text
    assert dest.rcpt_attempts["user@dest.test"] >= 2
    wait_until_gone(relay, queue_id)
    assert lab.sender_sink.snapshot() == [], "a delivered message is not bounced (delay_warning is 4h)"


def test_a_connection_cached_longer_than_the_command_timeout_is_reused_safely(lab):
    # The first delivery leaves its connection in the cache (kept up to 10 s idle). The second message
    # comes after the 2s command timeout has run out on that idle connection: it must be delivered (on
    # the cached connection or a fresh one), and the relay must keep running.
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)), delivery={"command_timeout": "2s"})

    first_id, first_subject = submit(relay, "user@dest.test")
    wait_for_messages(dest, 1, relay)
    wait_for_line(relay, first_id, "sent")
    time.sleep(3.0)
    second_id, second_subject = submit(relay, "user@dest.test")
    messages = wait_for_messages(dest, 2, relay)
    assert subjects(messages) == [first_subject, second_subject]
    assert relay.process.poll() is None, relay_state(relay)
    wait_until_gone(relay, second_id)


def test_a_deferred_recipient_is_retried_between_retry_min_and_retry_max(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    dest.rcpt_reply = lambda address, attempt: "451 4.7.1 Greylisted, try again later" if attempt == 1 else None
    # A long command timeout, so that the retry on the cached connection is not disturbed by its idle timer.
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)), delivery={"command_timeout": "30s"})

    queue_id, subject = submit(relay, "user@dest.test")
    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert message.header("Subject") == subject
    rcpts = [command.at for command in dest.commands if command.line.upper().startswith("RCPT")]
    assert len(rcpts) == 2, [command.line for command in dest.commands]
    gap = rcpts[1] - rcpts[0]
    # retry_min = 1s, retry_max = 2s, 10% jitter: the second attempt is due 0.9 to 1.1 s after the first.
    assert 0.8 <= gap <= 3.0, (
        f"the retry came {gap:.2f}s after the first attempt, though retry_min = 1s and retry_max = 2s\n"
        + "\n".join(line.text for line in delivery_lines(relay, queue_id))
    )
    wait_until_gone(relay, queue_id)


# ---------------------------------------------------------------------------------------------------
# 4. One refused recipient among three


def test_one_550_among_three_recipients_bounces_that_one_alone(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    refusal = "550 5.1.1 <bob@dest.test>: Recipient address rejected: User unknown in sink table"
    dest.rcpt_reply = lambda address, attempt: refusal if address.lower() == "bob@dest.test" else None
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))

    recipients = ["alice@dest.test", "bob@dest.test", "carol@dest.test"]
    queue_id, subject = submit(relay, recipients)

    [delivered] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert delivered.recipients == ["alice@dest.test", "carol@dest.test"], "the two good ones, in one transaction"
    assert delivered.header("Subject") == subject

    [bounce] = wait_for_messages(lab.sender_sink, 1, relay, timeout=WAIT)
    assert bounce.mail_from == "", f"a bounce goes out with MAIL FROM:<>, not <{bounce.mail_from}>"
    assert bounce.recipients == [SENDER]
    report = parse_report(bounce.data)
    assert f"MAILER-DAEMON@{HOSTNAME}" in report.message["From"]
    assert one_line(report.per_message["Reporting-MTA"]) == f"dns; {HOSTNAME}"
    assert len(report.recipients) == 1, [block["Final-Recipient"] for block in report.recipients]
    block = report.recipient("bob@dest.test")
    assert one_line(block["Action"]) == "failed"
    assert one_line(block["Status"]) == "5.1.1"
    diagnostic = one_line(block["Diagnostic-Code"])
    assert diagnostic.lower().startswith("smtp;"), diagnostic
    assert "550" in diagnostic and "User unknown in sink table" in diagnostic, diagnostic
    assert one_line(block["Remote-MTA"]) == "dns; mx.dest.test", block["Remote-MTA"]
    original = report.message.get_payload()[2]
    assert f"Subject: {subject}" in original.as_string()

    lines = {line.to: line for line in delivery_lines(relay, queue_id)}
    assert lines["alice@dest.test"].status == "sent"
    assert lines["carol@dest.test"].status == "sent"
    assert lines["bob@dest.test"].status == "bounced" and lines["bob@dest.test"].dsn == "5.1.1"
    wait_until_gone(relay, queue_id)
    wait_until(lambda: relay.queue_list() == [], what="an empty queue (the bounce delivered too)", server=relay)
    assert len(dest.snapshot()) == 1
    mails = [command for command in dest.commands if command.line.upper().startswith("MAIL")]
    assert len(mails) == 1, f"expected one transaction at the destination, saw {[c.line for c in mails]}"


# ---------------------------------------------------------------------------------------------------
# 5. Null MX, NXDOMAIN, and the null sender


def test_null_mx_and_nxdomain_are_bounced(lab):
    relay = lab.relay([null_mx("nullmx.test")])

    null_id, null_subject = submit(relay, "user@nullmx.test")
    missing_id, missing_subject = submit(relay, "user@nowhere.test")

    bounces = wait_for_messages(lab.sender_sink, 2, relay, timeout=WAIT)
    reports = {}
    for bounce in bounces:
        assert bounce.mail_from == "" and bounce.recipients == [SENDER]
        report = parse_report(bounce.data)
        assert len(report.recipients) == 1
        reports[one_line(report.recipients[0]["Final-Recipient"])] = report

    null_block = reports["rfc822; user@nullmx.test"].recipient("user@nullmx.test")
    assert one_line(null_block["Action"]) == "failed"
    assert one_line(null_block["Status"]) == "5.1.10", null_block["Status"]
    assert null_subject in reports["rfc822; user@nullmx.test"].message.get_payload()[2].as_string()

    missing_block = reports["rfc822; user@nowhere.test"].recipient("user@nowhere.test")
    assert one_line(missing_block["Action"]) == "failed"
    assert one_line(missing_block["Status"]) == "5.1.2", missing_block["Status"]
    assert missing_subject in reports["rfc822; user@nowhere.test"].message.get_payload()[2].as_string()

    assert wait_for_line(relay, null_id, "bounced").dsn == "5.1.10"
    assert wait_for_line(relay, missing_id, "bounced").dsn == "5.1.2"
    wait_until_gone(relay, null_id)
    wait_until_gone(relay, missing_id)


def test_one_message_failing_at_two_domains_gets_one_bounce_listing_both(lab):
    refusal = "550 5.1.1 Recipient address rejected: User unknown"
    first = lab.sink("127.0.0.3", "mx.one.test")
    second = lab.sink("127.0.0.4", "mx.two.test")
    first.rcpt_reply = second.rcpt_reply = lambda address, attempt: refusal
    relay = lab.relay([mx("one.test", "mx.one.test", 10), a("mx.one.test", "127.0.0.3"),
                       mx("two.test", "mx.two.test", 10), a("mx.two.test", "127.0.0.4")])

    queue_id, subject = submit(relay, ["alice@one.test", "bob@two.test"])
    wait_for_line(relay, queue_id, "bounced", to="alice@one.test")
    wait_for_line(relay, queue_id, "bounced", to="bob@two.test")
    wait_until_gone(relay, queue_id)
    [bounce] = wait_for_messages(lab.sender_sink, 1, relay, timeout=WAIT)
    time.sleep(1.0)
    assert len(lab.sender_sink.snapshot()) == 1, "one DSN for the message, not one per domain"
    assert bounce.mail_from == "" and bounce.recipients == [SENDER]
    report = parse_report(bounce.data)
    assert sorted(one_line(block["Final-Recipient"]) for block in report.recipients) == [
        "rfc822; alice@one.test", "rfc822; bob@two.test"]
    for address, host in (("alice@one.test", "mx.one.test"), ("bob@two.test", "mx.two.test")):
        block = report.recipient(address)
        assert one_line(block["Action"]) == "failed" and one_line(block["Status"]) == "5.1.1"
        assert one_line(block["Diagnostic-Code"]) == f"smtp; {refusal}", block["Diagnostic-Code"]
        assert one_line(block["Remote-MTA"]) == f"dns; {host}", block["Remote-MTA"]
    assert subject in report.message.get_payload()[2].as_string()
    notices = [line for line in relay.log_text().splitlines() if f"{queue_id}: sender non-delivery notification: " in line]
    assert len(notices) == 1, notices


def test_a_refused_connection_is_a_local_error_not_a_reply(lab):
    # mx.dest.test is 127.0.0.3:P, where nothing listens. The host never said anything: queue show and the
    # expiry DSN give the relay's own error, name no remote MTA and make up no SMTP reply.
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)), delivery={"max_queue_lifetime": "3s"})

    queue_id, subject = submit(relay, "user@dest.test")
    deferred = wait_for_line(relay, queue_id, "deferred")
    assert deferred.relay == "none", deferred.text
    assert deferred.reply.startswith("local error: connect to mx.dest.test[127.0.0.3]"), deferred.text
    shown = relay.queue_show(queue_id)
    assert shown is not None, "a deferred message stays in the queue until it expires"
    [recipient] = shown["recipients"]
    assert recipient["last_reply"] is None and recipient["last_relay"] is None, recipient
    assert f"mx.dest.test[127.0.0.3]:{lab.mx_port}" in recipient["last_error"], recipient
    text = relay.cli("queue", "show", queue_id)
    assert text.returncode == 0, text.stderr
    assert "last error (local): connect to mx.dest.test[127.0.0.3]" in text.stdout, text.stdout
    assert "last reply:" not in text.stdout, text.stdout

    [bounce] = wait_for_messages(lab.sender_sink, 1, relay, timeout=15)
    block = parse_report(bounce.data).recipient("user@dest.test")
    assert one_line(block["Action"]) == "failed"
    assert one_line(block["Status"]) == "5.4.7", block["Status"]
    diagnostic = one_line(block["Diagnostic-Code"])
    assert diagnostic.startswith("X-Petrel; connect to mx.dest.test[127.0.0.3]"), diagnostic
    assert block["Remote-MTA"] is None, block["Remote-MTA"]
    wait_until_gone(relay, queue_id)


def test_a_null_sender_message_is_never_bounced(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    dest.rcpt_reply = lambda address, attempt: "550 5.1.1 No such user here"
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))

    queue_id, _ = submit(relay, ["user@dest.test", "user@nowhere.test"], sender="")
    wait_for_line(relay, queue_id, "bounced", to="user@dest.test")
    wait_for_line(relay, queue_id, "bounced", to="user@nowhere.test")
    wait_until_gone(relay, queue_id)
    # A notification would have been queued in the same transaction that removed the message.
    assert relay.queue_list() == [], "a message with the null reverse path must not be bounced"
    assert "sender non-delivery notification" not in relay.log_text()
    time.sleep(0.5)
    assert lab.sender_sink.snapshot() == [] and dest.snapshot() == []
    assert lab.sender_sink.connections == 0


# ---------------------------------------------------------------------------------------------------
# 6. Expiry


def test_a_message_deferred_past_its_lifetime_expires_with_a_4_4_7_bounce(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    dest.rcpt_reply = lambda address, attempt: "451 4.3.0 Always temporarily unavailable"
    # A long command timeout: the retry reuses the connection cached after the first attempt, and this
    # test is about expiry, not about test_451_is_retried_and_then_delivered's crash.
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)),
                      delivery={"max_queue_lifetime": "3s", "command_timeout": "30s"})

    started = time.monotonic()
    queue_id, subject = submit(relay, "user@dest.test")
    [bounce] = wait_for_messages(lab.sender_sink, 1, relay, timeout=15)
    elapsed = time.monotonic() - started
    assert elapsed >= 2.5, f"bounced after {elapsed:.1f}s, before the 3s lifetime ran out"
    assert bounce.mail_from == "" and bounce.recipients == [SENDER]
    report = parse_report(bounce.data)
    block = report.recipient("user@dest.test")
    assert one_line(block["Action"]) == "failed"
    # The relay gives up: a permanent status (RFC 3463 X.4.7), the server's last reply as the diagnostic.
    assert one_line(block["Status"]) == "5.4.7", block["Status"]
    diagnostic = one_line(block["Diagnostic-Code"])
    assert diagnostic.startswith("smtp; 451 4.3.0") and "Always temporarily unavailable" in diagnostic, diagnostic
    assert one_line(block["Remote-MTA"]) == "dns; mx.dest.test", block["Remote-MTA"]
    assert subject in report.message.get_payload()[2].as_string()

    expired = wait_for_line(relay, queue_id, "expired")
    assert expired.attempts >= 2, expired.text
    assert [line.status for line in delivery_lines(relay, queue_id)][:-1] == ["deferred"] * (expired.attempts - 1)
    wait_until_gone(relay, queue_id)
    assert dest.snapshot() == []


# ---------------------------------------------------------------------------------------------------
# 7. Smarthost and routes


def test_the_smarthost_takes_all_mail_but_a_route_wins_for_its_domain(lab):
    smarthost = lab.sink("127.0.0.30", "smarthost.test")
    routed = lab.sink("127.0.0.9", "routed-mx.test")
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    relay = lab.relay(
        dest_records(("mx.dest.test", "127.0.0.3", 10)),
        delivery={"smarthost": f"127.0.0.30:{lab.mx_port}"},
        routes={"routed.test": f"127.0.0.9:{lab.mx_port}"},
    )

    dest_id, dest_subject = submit(relay, "user@dest.test")
    nowhere_id, nowhere_subject = submit(relay, "user@nowhere.test")  # no DNS at all: the smarthost knows
    routed_id, routed_subject = submit(relay, "user@routed.test")

    smarthost_messages = wait_for_messages(smarthost, 2, relay, timeout=WAIT)
    assert sorted(subjects(smarthost_messages)) == sorted([dest_subject, nowhere_subject])
    [routed_message] = wait_for_messages(routed, 1, relay, timeout=WAIT)
    assert routed_message.header("Subject") == routed_subject
    assert routed_message.recipients == ["user@routed.test"]

    assert wait_for_line(relay, dest_id, "sent").relay == f"127.0.0.30[127.0.0.30]:{lab.mx_port}"
    assert wait_for_line(relay, nowhere_id, "sent").relay == f"127.0.0.30[127.0.0.30]:{lab.mx_port}"
    assert wait_for_line(relay, routed_id, "sent").relay == f"127.0.0.9[127.0.0.9]:{lab.mx_port}"
    for queue_id in (dest_id, nowhere_id, routed_id):
        wait_until_gone(relay, queue_id)
    assert dest.connections == 0, "with a smarthost, the MX is never used"
    assert len(smarthost.snapshot()) == 2 and len(routed.snapshot()) == 1


# ---------------------------------------------------------------------------------------------------
# 8. SIGKILL in the middle of a delivery


def test_sigkill_during_delivery_loses_nothing_and_restart_retries_promptly(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    hold = threading.Event()
    dest.hold_data_reply = hold
    # later.test's MX is down at first: its messages are acknowledged, then deferred, when the kill comes.
    records = dest_records(("mx.dest.test", "127.0.0.3", 10)) + [
        mx("later.test", "mx.later.test", 10), a("mx.later.test", "127.0.0.5")]
    relay = lab.relay(records, delivery={"data_timeout": "30s", "command_timeout": "30s"})

    in_flight_id, in_flight_subject = submit(relay, "user@dest.test")
    dest.wait_for(lambda: dest.held >= 1, WAIT, "held message text")
    deferred = [submit(relay, f"user{index}@later.test") for index in range(3)]
    for queue_id, _ in deferred:
        wait_for_line(relay, queue_id, "deferred")
    assert delivery_lines(relay, in_flight_id) == [], "the held delivery has no result yet"

    relay.kill()
    queued = relay.queue_ids()
    assert queued == {in_flight_id, *(queue_id for queue_id, _ in deferred)}, queued

    later = lab.sink("127.0.0.5", "mx.later.test")
    hold.set()  # the killed relay's held connection is gone; new deliveries are answered at once
    restarted = time.monotonic()
    relay.restart()

    [first] = wait_until(lambda: [m for m in dest.snapshot() if m.header("Subject") == in_flight_subject],
                         timeout=WAIT, what="the in-flight message delivered after the restart", server=relay)
    in_flight_delay = time.monotonic() - restarted
    assert in_flight_delay < WAIT, f"the in-flight message took {in_flight_delay:.1f}s after the restart"
    wait_for_messages(later, 3, relay, timeout=WAIT)
    wait_until(lambda: relay.queue_list() == [], what="an empty queue", server=relay)

    released = [int(count) for count in re.findall(r"released (\d+) recipient leases", relay.log_text())]
    assert released and released[-1] >= 1, f"no lease released at the restart:\n{relay.log_text()[-4000:]}"
    delivered = subjects(dest.snapshot())
    assert delivered.count(in_flight_subject) in (1, 2), delivered  # at most the in-flight one twice
    later_subjects = subjects(later.snapshot())
    assert sorted(later_subjects) == sorted(subject for _, subject in deferred), "each exactly once"
    assert lab.sender_sink.snapshot() == [], "nothing bounced"


# ---------------------------------------------------------------------------------------------------
# 9. Connection reset mid-DATA, 421 greeting: retried, never lost


@pytest.mark.parametrize("failure", ["reset_mid_data", "greeting_421"])
def test_a_broken_destination_defers_the_message_until_it_recovers(lab, failure):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    if failure == "reset_mid_data":
        dest.reset_mid_data = True
    else:
        dest.greeting = "421 4.3.2 mx.dest.test Service not available, closing channel"
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))

    queue_id, subject = submit(relay, "user@dest.test")
    line = wait_for_line(relay, queue_id, "deferred")
    assert line.attempts == 1 and line.dsn.startswith("4."), line.text
    shown = relay.queue_show(queue_id)
    assert shown is not None, "the message must stay queued"
    [recipient] = shown["recipients"]
    assert recipient["state"] == "deferred", recipient
    assert recipient["attempts"] >= 1, recipient
    if failure == "greeting_421":
        # The server said it: its reply, from it.
        assert "421" in (recipient["last_reply"] or "") and "4.3.2" in recipient["last_reply"], recipient
        assert "127.0.0.3" in (recipient["last_relay"] or ""), recipient
        assert recipient["last_error"] is None, recipient
    else:
        # The connection died mid-DATA: no reply came, so none is shown; the relay's own error names the host.
        assert recipient["last_reply"] is None and recipient["last_relay"] is None, recipient
        assert "127.0.0.3" in (recipient["last_error"] or ""), recipient
        assert dest.resets >= 1
    assert dest.snapshot() == []

    # The destination recovers: the next retry delivers.
    dest.reset_mid_data = False
    dest.greeting = "220 mx.dest.test ESMTP sink"
    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert message.header("Subject") == subject
    assert wait_for_line(relay, queue_id, "sent").attempts >= 2
    wait_until_gone(relay, queue_id)
    assert lab.sender_sink.snapshot() == []
