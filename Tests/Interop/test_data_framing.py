"""The message text after DATA: line endings, the end-of-data mark (and SMTP smuggling), dot-stuffing,
the Received-header loop limit, and the header fields the server adds."""

import datetime
import email.utils

import pytest

from conftest import SMTPConversation, queue_id_of, simple_message

HEAD = b"From: a@example.org\r\nTo: r@example.com\r\nSubject: framing\r\n\r\n"


def begin_data(smtp, sender="a@example.org", recipient="r@example.com"):
    smtp.expect(f"MAIL FROM:<{sender}>", 250)
    smtp.expect(f"RCPT TO:<{recipient}>", 250)
    smtp.expect("DATA", 354)


@pytest.fixture
def normalizing_server(petrel_server):
    return petrel_server({"inbound": {"bare_line_endings": "normalize"}})


@pytest.mark.parametrize("text", [
    HEAD + b"a\nb\r\n",
    HEAD + b"a\rb\r\n",
    b"Subject: bare LF in the header\nX: y\r\n\r\nbody\r\n",
    HEAD + b"a\x00b\r\n",
], ids=["bare-LF", "bare-CR", "bare-LF-in-header", "NUL"])
def test_bare_line_ending_is_refused_and_not_queued(default_server, text):
    before = default_server.queue_ids()
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(text)
        assert (reply.code, reply.enhanced) == (550, "5.6.0"), str(reply)
        smtp.expect("NOOP", 250, "2.0.0")
    assert default_server.queue_ids() == before


SMUGGLING_ENDINGS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n\x00.\r\n"]


@pytest.mark.parametrize("fake_end", SMUGGLING_ENDINGS,
                         ids=lambda b: b.decode().replace("\r", "CR").replace("\n", "LF").replace("\x00", "NUL"))
def test_smuggled_end_of_data_does_not_end_the_message(default_server, fake_end):
    """`hello<fake end>MAIL FROM:...<CRLF>.<CRLF>`: one message, one reply (the refusal), no 250 for a
    smuggled MAIL command (CVE-2023-51764 and friends)."""
    before = default_server.queue_ids()
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        smtp.send(HEAD + b"hello" + fake_end + b"MAIL FROM:<x@y.example>\r\n.\r\n")
        reply = smtp.read_reply()
        assert (reply.code, reply.enhanced) == (550, "5.6.0"), str(reply)
        assert smtp.nothing_more_within(0.5), f"a second reply arrived: {smtp.buffer!r}"
        # The next command is answered as the first after the message: no smuggled transaction is open.
        smtp.expect("RCPT TO:<r@example.com>", 503, "5.5.1")
    assert default_server.queue_ids() == before


def test_smuggling_attempt_in_normalize_mode_is_one_message(normalizing_server):
    with SMTPConversation(normalizing_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        smtp.send(HEAD + b"hello\n.\nMAIL FROM:<x@y.example>\r\nRCPT TO:<s@z.example>\r\nDATA\r\n.\r\n")
        reply = smtp.read_reply()
        assert reply.code == 250, str(reply)
        assert smtp.nothing_more_within(0.5), f"a second reply arrived: {smtp.buffer!r}"
        smtp.expect("RCPT TO:<r@example.com>", 503, "5.5.1")
    queue_id = queue_id_of(reply)
    assert normalizing_server.queue_ids() == {queue_id}
    _, text = normalizing_server.stored_parts(queue_id)
    assert text == HEAD + b"hello\r\n.\r\nMAIL FROM:<x@y.example>\r\nRCPT TO:<s@z.example>\r\nDATA\r\n"


def test_normalize_mode_stores_crlf(normalizing_server):
    with SMTPConversation(normalizing_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(HEAD + b"a\nb\rc\r\nd\r\n")
        assert reply.code == 250, str(reply)
    _, text = normalizing_server.stored_parts(queue_id_of(reply))
    assert text == HEAD + b"a\r\nb\r\nc\r\nd\r\n"


def test_normalize_mode_removes_nul(normalizing_server):
    """The NUL goes, and what followed it stays text: `<CRLF><NUL>.<CRLF>` is no end of data, before or
    after the removal (the next hop gets the line dot-stuffed)."""
    with SMTPConversation(normalizing_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(HEAD + b"a\x00b\r\n\x00.\r\nc\r\n")
        assert reply.code == 250, str(reply)
        assert smtp.nothing_more_within(0.5), f"a second reply arrived: {smtp.buffer!r}"
    _, text = normalizing_server.stored_parts(queue_id_of(reply))
    assert text == HEAD + b"ab\r\n.\r\nc\r\n"


def test_dot_stuffed_lines_are_stored_unstuffed(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(HEAD + b"..leading dot\r\n...\r\n..\r\nnot.at.start\r\n")
        assert reply.code == 250, str(reply)
    _, text = default_server.stored_parts(queue_id_of(reply))
    assert text == HEAD + b".leading dot\r\n..\r\n.\r\nnot.at.start\r\n"


def test_end_of_data_split_across_writes(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        for piece in [HEAD + b"split\r", b"\n.", b"\r", b"\n"]:
            smtp.send(piece)
            if piece != b"\n":
                assert smtp.nothing_more_within(0.2), "replied before the end of data"
        reply = smtp.read_reply()
        assert reply.code == 250, str(reply)
    assert default_server.stored_parts(queue_id_of(reply))[1] == HEAD + b"split\r\n"


def received_headers(count):
    return b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 2 Jan 2023 03:04:05 +0000\r\n" % (i, i + 1)
                    for i in range(count))


def test_too_many_received_headers_is_a_loop(default_server):
    before = default_server.queue_ids()
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(received_headers(101) + HEAD)
        assert (reply.code, reply.enhanced) == (554, "5.4.6"), str(reply)
        smtp.expect("NOOP", 250)
    assert default_server.queue_ids() == before


def test_max_received_headers_is_still_accepted(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(received_headers(100) + HEAD)
        assert reply.code == 250, str(reply)


def test_received_header_names_the_queue_id_and_client(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo("trace.client.test")
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
    trace, _ = default_server.stored_parts(queue_id)
    received = trace.split(b"\r\n")[0]
    assert received.startswith(b"Received: from trace.client.test ([127.0.0.1])"), trace
    assert f"id {queue_id}".encode() in trace
    assert b"with ESMTP" in trace
    row = default_server.message_row(queue_id)
    _, text = default_server.stored_parts(queue_id)
    assert row["size"] == len(trace) + len(text)


def test_received_header_records_smtputf8(default_server):
    """RFC 6531 §3.7.3: a transaction with SMTPUTF8 is `with UTF8SMTP`."""
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message(), mail_params="SMTPUTF8")
    trace, _ = default_server.stored_parts(queue_id)
    assert b"with UTF8SMTP id" in trace, trace


def test_missing_date_and_message_id_are_added_for_relay_clients(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message(with_date_and_id=False))
    trace, text = default_server.stored_parts(queue_id)
    assert trace.startswith(b"Received: ")
    assert b"\r\nDate: " in trace, trace
    assert f"\r\nMessage-ID: <{queue_id}@".encode() in trace, trace
    date_line = next(line for line in trace.split(b"\r\n") if line.startswith(b"Date: "))
    added = email.utils.parsedate_to_datetime(date_line[len(b"Date: "):].decode())
    assert added.tzinfo is not None
    assert abs((datetime.datetime.now(datetime.timezone.utc) - added).total_seconds()) < 120, date_line
    assert b"Date:" not in text and b"Message-ID:" not in text


def test_present_date_and_message_id_are_not_added_again(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message(with_date_and_id=True))
    trace, text = default_server.stored_parts(queue_id)
    assert b"Date:" not in trace and b"Message-ID:" not in trace, trace
    assert text == simple_message(with_date_and_id=True)


def test_header_names_are_matched_case_insensitively(default_server):
    text = b"DATE: Mon, 02 Jan 2023 03:04:05 +0000\r\nmessage-id: <lower@example.org>\r\nSubject: x\r\n\r\nbody\r\n"
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], text)
    trace, _ = default_server.stored_parts(queue_id)
    assert b"Date:" not in trace and b"Message-ID:" not in trace, trace


def test_received_lines_in_the_body_are_not_counted(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        reply = smtp.finish_data(HEAD + received_headers(150))
        assert reply.code == 250, str(reply)


def test_max_received_headers_is_configurable(petrel_server):
    server = petrel_server({"inbound": {"max_received_headers": 5}})
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        begin_data(smtp)
        assert smtp.finish_data(received_headers(5) + HEAD).code == 250
        begin_data(smtp)
        reply = smtp.finish_data(received_headers(6) + HEAD)
        assert (reply.code, reply.enhanced) == (554, "5.4.6"), str(reply)
