"""What the relay sends must be what the next hop may take (issue 10, faults on the way out): 8-bit
bodies are converted for a hop without 8BITMIME (RFC 6152 §3), over-long lines re-encoded or folded
(RFC 5321 §4.5.3.1.6), SMTPUTF8 sent only where offered and needed (RFC 6531 §3.4). Each converted
message is decoded with Python's `email` package and compared, part by part, octet for octet, with
what the client sent.
"""

from __future__ import annotations

import email
import email.policy

from conftest import SMTPConversation
from test_delivery import (  # noqa: F401 (lab is a fixture)
    SENDER, WAIT, dest_records, lab, parse_report, pytestmark, wait_for_line, wait_for_messages, wait_until_gone,
)

MULTIPART = (
    "From: <sender@sender.test>\r\nTo: <user@dest.test>\r\nSubject: converted\r\nMIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"outer-b\"\r\n\r\n"
    "This is a multi-part message in MIME format.\r\n"
    "--outer-b\r\nContent-Type: multipart/alternative; boundary=inner-b\r\n\r\n"
    "--inner-b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "Viele Grüße aus Köln,\r\nund ein Satz mit Leerzeichen am Ende \r\n.eine Zeile mit Punkt\r\n"
    "--inner-b\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    "<p>Привет, как дела? Всё хорошо.</p>\r\n"
    "--inner-b--\r\n"
    "--outer-b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\n"
    "Content-Transfer-Encoding: 8bit\r\n\r\n"
    "bin\xe4r \xff\xfe daten\r\nzweite\r\n"
    "--outer-b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
    "--outer-b--\r\n"
)


def original_bytes() -> bytes:
    # The binary attachment's octets are latin-1 escapes; everything else is UTF-8.
    head, _, tail = MULTIPART.partition("bin\xe4r")
    binary, _, rest = ("bin\xe4r" + tail).partition("\r\n--outer-b\r\nContent-Type: image/png")
    return head.encode() + binary.encode("latin-1") + ("\r\n--outer-b\r\nContent-Type: image/png" + rest).encode()


def dot_stuff(text: bytes) -> bytes:
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in text.split(b"\r\n"))


def submit(relay, text: bytes, mail_params: str = "", recipient: str = "user@dest.test", sender: str = SENDER) -> str:
    with SMTPConversation(relay.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail(sender, [recipient], dot_stuff(text), mail_params)
        smtp.command("QUIT")
    return queue_id


def leaves(message: email.message.Message) -> list:
    return [part for part in message.walk() if not part.is_multipart()]


def lines_within_the_limit(data: bytes) -> bool:
    return all(len(line) <= 998 for line in data.split(b"\r\n"))


def test_eight_bit_mime_is_converted_for_a_hop_without_8bitmime(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    dest.advertise_8bitmime = False
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))
    original = original_bytes()
    queue_id = submit(relay, original, "BODY=8BITMIME")

    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert not any(param.upper().startswith("BODY=") for param in message.mail_params), message.mail_params
    assert all(byte < 0x80 for byte in message.data), "an 8-bit octet went to a hop without 8BITMIME"
    assert lines_within_the_limit(message.data)

    sent = email.message_from_bytes(original, policy=email.policy.compat32)
    received = message.parsed()
    assert received["Subject"] == "converted"
    sent_parts, received_parts = leaves(sent), leaves(received)
    assert [p.get_content_type() for p in received_parts] == [p.get_content_type() for p in sent_parts]
    for before, after in zip(sent_parts, received_parts):
        assert after.get_payload(decode=True) == before.get_payload(decode=True), before.get_content_type()
    encodings = [p["Content-Transfer-Encoding"] for p in received_parts]
    # Text with a little 8-bit: quoted-printable; mostly 8-bit (Cyrillic) and binary: base64; the
    # already encoded image is untouched.
    assert encodings == ["quoted-printable", "base64", "base64", "base64"], encodings
    assert b"--outer-b\r\n" in message.data and b"--inner-b--\r\n" in message.data and b"--outer-b--\r\n" in message.data
    assert b"\r\niVBORw0KGgo=\r\n" in message.data
    assert wait_for_line(relay, queue_id, "sent").dsn.startswith("2.")


def test_a_non_mime_eight_bit_message_bounces_with_5_6_3_when_no_mx_offers_8bitmime(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    dest.advertise_8bitmime = False
    backup = lab.sink("127.0.0.4", "mx2.dest.test")
    backup.advertise_8bitmime = False
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10), ("mx2.dest.test", "127.0.0.4", 20)))
    text = "From: <sender@sender.test>\r\nSubject: not MIME\r\n\r\nGrüße ohne MIME-Version\r\n".encode()
    queue_id = submit(relay, text)

    [bounce] = wait_for_messages(lab.sender_sink, 1, relay, timeout=WAIT)
    report = parse_report(bounce.data)
    block = report.recipient("user@dest.test")
    assert " ".join(block["Status"].split()) == "5.6.3", block["Status"]
    # No server refused it: the relay's own finding, with a non-smtp diagnostic type (RFC 3464 §2.3.6).
    diagnostic = " ".join(block["Diagnostic-Code"].split())
    assert diagnostic.startswith("X-Petrel;") and "not MIME" in diagnostic, diagnostic
    assert "Remote-MTA" not in block, block
    assert wait_for_line(relay, queue_id, "bounced").dsn == "5.6.3"
    wait_until_gone(relay, queue_id)
    assert dest.snapshot() == [] and backup.snapshot() == []
    # Both MXs were asked (EHLO) before the relay gave up; neither got a MAIL command.
    assert dest.connections >= 1 and backup.connections >= 1
    assert not [c for c in dest.commands + backup.commands if c.line.upper().startswith("MAIL")]


def test_an_all_ascii_smtputf8_message_goes_to_a_hop_without_smtputf8_without_the_parameter(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    assert not dest.advertise_smtputf8
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))
    text = b"From: <sender@sender.test>\r\nSubject: all ASCII\r\n\r\nHello.\r\n"
    queue_id = submit(relay, text, "SMTPUTF8")

    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert "SMTPUTF8" not in [param.upper() for param in message.mail_params], message.mail_params
    assert message.parsed()["Subject"] == "all ASCII"
    assert wait_for_line(relay, queue_id, "sent").dsn.startswith("2.")


def test_a_message_that_needs_smtputf8_bounces_with_5_6_7_at_a_hop_without_it(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))
    text = "From: <sender@sender.test>\r\nSubject: Grüße\r\n\r\nHello.\r\n".encode()
    queue_id = submit(relay, text, "SMTPUTF8 BODY=8BITMIME")
    assert wait_for_line(relay, queue_id, "bounced").dsn == "5.6.7"
    assert dest.snapshot() == []


def test_a_100_kb_line_is_reencoded_and_a_26_kb_header_folded_and_both_decode_equal(lab):
    dest = lab.sink("127.0.0.3", "mx.dest.test")  # with 8BITMIME: only the length is the problem
    relay = lab.relay(dest_records(("mx.dest.test", "127.0.0.3", 10)))
    line = ("0123456789abcdef" * 6250).encode()  # 100,000 octets
    subject = " ".join(f"word{n}" for n in range(3000))  # about 26,000 octets with white space to fold at
    text = (f"From: <sender@sender.test>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\nfirst line\r\n").encode() + line + b"\r\nlast line\r\n"
    queue_id = submit(relay, text)

    [message] = wait_for_messages(dest, 1, relay, timeout=WAIT)
    assert lines_within_the_limit(message.data)
    received = message.parsed()
    assert " ".join(received["Subject"].split()) == subject
    assert received["Content-Transfer-Encoding"] == "quoted-printable"
    sent = email.message_from_bytes(text, policy=email.policy.compat32)
    assert received.get_payload(decode=True) == sent.get_payload(decode=True)
    assert wait_for_line(relay, queue_id, "sent").dsn.startswith("2.")
