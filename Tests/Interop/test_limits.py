"""The limits of [inbound]: message size, recipients, command line length, connections, timeouts and
the error count."""

import time

import pytest

from conftest import (
    SMTPConversation, advertised_size, loopback_alias_usable, queue_id_of, simple_message,
)


@pytest.fixture
def small_server(petrel_server):
    return petrel_server({"inbound": {"max_message_size": "10KB", "max_recipients": 3}})


def text_of_exactly(size: int) -> bytes:
    """A message text of exactly `size` octets (CRLFs included), without lines that need dot-stuffing."""
    head = simple_message("sized", "")
    assert size > len(head) + 2
    filler = size - len(head) - 2
    lines = []
    while filler > 0:
        chunk = min(filler, 78)
        lines.append(b"y" * chunk)
        filler -= chunk + 2
    text = head + b"\r\n".join(lines) + b"\r\n"
    assert len(text) in (size, size + 1)
    if len(text) == size + 1:  # the last chunk overshot by the CRLF split: trim one filler octet
        text = text[:-3] + b"\r\n"
    assert len(text) == size, (len(text), size)
    return text


def test_ehlo_advertises_the_configured_size(small_server):
    with SMTPConversation(small_server.address) as smtp:
        assert advertised_size(smtp.ehlo()) == 10 * 1024  # KB is 1024 octets (README)


def test_declared_size_over_the_limit_is_refused_at_mail(small_server):
    with SMTPConversation(small_server.address) as smtp:
        limit = advertised_size(smtp.ehlo())
        smtp.expect(f"MAIL FROM:<a@example.org> SIZE={limit + 1}", 552, "5.3.4")
        smtp.expect(f"MAIL FROM:<a@example.org> SIZE={limit}", 250, "2.1.0")


def test_oversized_data_is_refused_and_not_queued(small_server):
    before = small_server.queue_list()
    with SMTPConversation(small_server.address) as smtp:
        limit = advertised_size(smtp.ehlo())
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(text_of_exactly(2 * limit))
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)
        # The session is still usable, and the transaction was reset.
        smtp.expect("RCPT TO:<r@example.com>", 503, "5.5.1")
        smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
    assert len(small_server.queue_list()) == len(before) + 1


def test_message_of_exactly_the_limit_is_accepted_one_more_octet_is_not(small_server):
    with SMTPConversation(small_server.address) as smtp:
        limit = advertised_size(smtp.ehlo())
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], text_of_exactly(limit))
        assert small_server.stored_parts(queue_id)[1] == text_of_exactly(limit)
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(text_of_exactly(limit + 1))
        assert (reply.code, reply.enhanced) == (552, "5.3.4"), str(reply)


def test_recipients_beyond_max_recipients_get_452(small_server):
    with SMTPConversation(small_server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        for index in range(3):
            smtp.expect(f"RCPT TO:<r{index}@example.com>", 250, "2.1.5")
        smtp.expect("RCPT TO:<r3@example.com>", 452, "4.5.3")
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(simple_message())
        assert reply.code == 250, str(reply)
    message = small_server.queue_show(queue_id_of(reply))
    assert [r["address"] for r in message["recipients"]] == ["r0@example.com", "r1@example.com", "r2@example.com"]


def test_command_line_over_512_octets_is_refused_and_the_session_goes_on(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        line = "NOOP " + "x" * (513 - len("NOOP ") - 2)  # 513 octets with the CRLF
        reply = smtp.expect(line, 500, "5.5.2")
        assert "line too long" in reply.text
        smtp.expect("NOOP", 250, "2.0.0")
        smtp.send_mail("a@example.org", ["r@example.com"], simple_message())


def test_very_long_command_line_is_refused_and_the_session_goes_on(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        reply = smtp.expect("EHLO " + "h" * 20_000, 500, "5.5.2")
        assert "line too long" in reply.text
        smtp.expect("NOOP", 250, "2.0.0")
        smtp.send_mail("a@example.org", ["r@example.com"], simple_message())


def test_mail_line_may_be_1170_octets_but_not_more(default_server):
    prefix = "MAIL FROM:<a@example.org> AUTH="
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.expect(prefix + "z" * (1170 - len(prefix) - 2), 250, "2.1.0")
        smtp.expect("RSET", 250)
        reply = smtp.expect(prefix + "z" * (1171 - len(prefix) - 2), 500, "5.5.2")
        assert "line too long" in reply.text


def test_rcpt_line_over_1012_octets_is_too_long(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        legal = "RCPT TO:<r@example.com> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;" + "o" * 480
        assert 512 < len(legal) + 2 < 1012
        smtp.expect(legal, 250, "2.1.5")
        prefix = "RCPT TO:<r@example.com> ORCPT=rfc822;"
        overlong = prefix + "o" * (1013 - len(prefix) - 2)  # 1013 octets with the CRLF
        reply = smtp.expect(overlong, 500, "5.5.2")
        assert "line too long" in reply.text


def open_admitted(address, source_address=None, attempts=20):
    """Opens a session that gets 220. Retries briefly on 421: a connection the test closed a moment ago
    may not be counted out yet."""
    for _ in range(attempts):
        smtp = SMTPConversation(address, source_address=source_address)
        if smtp.greeting.code == 220:
            return smtp
        smtp.close()
        time.sleep(0.1)
    raise AssertionError(f"no 220 from {address} after {attempts} attempts")


def test_connections_per_client_are_limited(petrel_server):
    server = petrel_server({"inbound": {"max_connections_per_client": 2}})
    first = open_admitted(server.address)
    second = open_admitted(server.address)
    try:
        with SMTPConversation(server.address) as third:
            assert (third.greeting.code, third.greeting.enhanced) == (421, "4.7.0"), str(third.greeting)
            assert third.wait_for_close() == b""
        # The admitted ones still work.
        first.ehlo()
        second.ehlo()
        # Closing one makes room again.
        first.expect("QUIT", 221)
        first.wait_for_close()
        open_admitted(server.address).close()
    finally:
        first.close()
        second.close()


@pytest.mark.skipif(not loopback_alias_usable("127.0.0.3"), reason="127.0.0.3 cannot be bound here")
def test_total_connections_are_limited(petrel_server):
    server = petrel_server({"inbound": {"max_connections": 2}})
    first = open_admitted(server.address, source_address=("127.0.0.1", 0))
    second = open_admitted(server.address, source_address=("127.0.0.2", 0))
    try:
        with SMTPConversation(server.address, source_address=("127.0.0.3", 0)) as third:
            assert (third.greeting.code, third.greeting.enhanced) == (421, "4.7.0"), str(third.greeting)
            assert third.wait_for_close() == b""
    finally:
        first.close()
        second.close()


def test_idle_client_is_timed_out(petrel_server):
    server = petrel_server({"inbound": {"command_timeout": "1s"}})
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        started = time.monotonic()
        reply = smtp.read_reply()
        waited = time.monotonic() - started
        assert (reply.code, reply.enhanced) == (421, "4.4.2"), str(reply)
        assert 0.5 <= waited <= 5, waited
        assert smtp.wait_for_close() == b""


def test_client_silent_during_data_is_timed_out_and_nothing_is_queued(petrel_server):
    server = petrel_server({"inbound": {"data_timeout": "1s"}})
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        smtp.send(b"Subject: half a message\r\n\r\nand then silence")
        reply = smtp.read_reply()
        assert (reply.code, reply.enhanced) == (421, "4.4.2"), str(reply)
        assert smtp.wait_for_close() == b""
    assert server.queue_list() == []


def test_too_many_bad_commands_close_the_connection(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        for _ in range(10):
            smtp.expect("BOGUS", 500, "5.5.2")
        reply = smtp.command("BOGUS")
        assert (reply.code, reply.enhanced) == (421, "4.7.0"), str(reply)
        assert smtp.wait_for_close() == b""
