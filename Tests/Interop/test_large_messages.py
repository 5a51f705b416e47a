"""Large messages: streamed to a spool file beside the queue, stored byte for byte."""

import hashlib
import smtplib
import time

from conftest import SMTPConversation, queue_id_of

INLINE_LIMIT = 256 * 1024


def large_text(size: int) -> bytes:
    """About `size` octets of deterministic, varied text, with lines that start with a dot."""
    lines = [b"From: big@example.org", b"To: r@example.com", b"Subject: a large message", b""]
    total = sum(len(line) + 2 for line in lines)
    index = 0
    while total < size:
        digest = hashlib.sha256(str(index).encode()).hexdigest().encode()
        line = (b"." if index % 17 == 0 else b"") + digest * (1 + index % 3)
        lines.append(line)
        total += len(line) + 2
        index += 1
    return b"\r\n".join(lines) + b"\r\n"


def dot_stuff(text: bytes) -> bytes:
    return b"\r\n".join((b"." + line) if line.startswith(b".") else line for line in text.split(b"\r\n"))


def test_five_megabyte_message_is_spooled_intact(default_server):
    text = large_text(5 * 1024 * 1024)
    with SMTPConversation(default_server.address, timeout=60) as smtp:
        smtp.ehlo()
        smtp.expect(f"MAIL FROM:<big@example.org> SIZE={len(text)}", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(dot_stuff(text))
        assert reply.code == 250, str(reply)
    queue_id = queue_id_of(reply)

    row = default_server.message_row(queue_id)
    assert row["spool_file"] is not None, "a 5 MB message should be in a spool file"
    assert row["body"] is None
    spool_file = default_server.spool_dir / row["spool_file"]
    assert spool_file.is_file()
    assert spool_file.stat().st_size == len(text)
    assert spool_file.read_bytes() == text
    assert row["size"] == len(row["trace_headers"]) + len(text)
    assert default_server.queue_show(queue_id)["size"] == row["size"]


def test_message_just_under_the_inline_limit_stays_inline(default_server):
    text = large_text(INLINE_LIMIT - 4096)
    assert len(text) <= INLINE_LIMIT
    with smtplib.SMTP("127.0.0.1", default_server.port, timeout=30) as client:
        client.ehlo("big.test")
        client.mail("big@example.org")
        client.rcpt("r@example.com")
        code, answer = client.data(text)  # smtplib dot-stuffs
    assert code == 250, answer
    row = default_server.message_row(queue_id_of(answer.decode()))
    assert row["spool_file"] is None
    assert bytes(row["body"]) == text


def test_message_just_over_the_inline_limit_is_spooled(default_server):
    text = large_text(INLINE_LIMIT + 4096)
    with smtplib.SMTP("127.0.0.1", default_server.port, timeout=30) as client:
        client.ehlo("big.test")
        client.mail("big@example.org")
        client.rcpt("r@example.com")
        code, answer = client.data(text)
    assert code == 250, answer
    queue_id = queue_id_of(answer.decode())
    row = default_server.message_row(queue_id)
    assert row["spool_file"] is not None
    assert (default_server.spool_dir / row["spool_file"]).read_bytes() == text


def test_refused_large_message_leaves_no_spool_file(petrel_server):
    server = petrel_server({"inbound": {"max_message_size": "1MB", "bare_line_endings": "reject"}})
    text = large_text(600 * 1024) + b"bare\nLF\r\n"  # spooled, then refused at the end for the bare LF
    with SMTPConversation(server.address, timeout=30) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<big@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(dot_stuff(text))
        assert (reply.code, reply.enhanced) == (550, "5.6.0"), str(reply)
        smtp.expect("MAIL FROM:<big@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(dot_stuff(large_text(2 * 1024 * 1024)))
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)
    assert server.queue_list() == []
    assert list(server.spool_dir.iterdir()) == []


def wait_until(condition, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()


def test_client_that_disconnects_mid_message_leaves_nothing(default_server):
    before = default_server.queue_ids()
    spool_before = set(default_server.spool_dir.iterdir())
    with SMTPConversation(default_server.address, timeout=30) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<big@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        smtp.send(dot_stuff(large_text(1024 * 1024)))  # no end of data
        assert wait_until(lambda: set(default_server.spool_dir.iterdir()) != spool_before), \
            "the message was never spooled"
    # The client is gone: the unacknowledged spool file must be removed.
    assert wait_until(lambda: set(default_server.spool_dir.iterdir()) == spool_before), \
        f"spool files left: {set(default_server.spool_dir.iterdir()) - spool_before}"
    assert default_server.queue_ids() == before
