"""RFC 2920 pipelining: commands sent in one write are answered in order, one reply each."""

from conftest import SMTPConversation, queue_id_of, simple_message


def test_pipelined_transaction_replies_in_order(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.send(
            "EHLO pipe.test\r\n"
            "MAIL FROM:<pipe@example.org>\r\n"
            "RCPT TO:<p1@example.com>\r\n"
            "RCPT TO:<p2@example.com>\r\n"
            "DATA\r\n"
        )
        ehlo, mail, rcpt1, rcpt2, data = smtp.read_replies(5)
        assert ehlo.code == 250 and "PIPELINING" in ehlo.lines
        assert (mail.code, mail.enhanced) == (250, "2.1.0")
        assert (rcpt1.code, rcpt1.enhanced) == (250, "2.1.5")
        assert (rcpt2.code, rcpt2.enhanced) == (250, "2.1.5")
        assert data.code == 354
        # The end of data and QUIT in one write, too.
        smtp.send(simple_message("pipelined") + b".\r\nQUIT\r\n")
        queued, bye = smtp.read_replies(2)
        assert queued.code == 250, str(queued)
        assert (bye.code, bye.enhanced) == (221, "2.0.0")
        assert smtp.wait_for_close() == b""
    message = default_server.queue_show(queue_id_of(queued))
    assert message["client_helo"] == "pipe.test"
    assert [r["address"] for r in message["recipients"]] == ["p1@example.com", "p2@example.com"]


def test_pipelined_errors_keep_their_place(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.send(
            "MAIL FROM:<a@example.org>\r\n"
            "RCPT TO:<bad address>\r\n"
            "RCPT TO:<good@example.com>\r\n"
            "NOOP\r\n"
            "RSET\r\n"
            "RCPT TO:<after-rset@example.com>\r\n"
        )
        replies = smtp.read_replies(6)
        assert [r.code for r in replies] == [250, 501, 250, 250, 250, 503], [str(r) for r in replies]
        assert replies[1].enhanced == "5.1.3"
        assert smtp.nothing_more_within(0.3)


def test_two_pipelined_messages_in_one_write(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        first = simple_message("first")
        second = simple_message("second")
        smtp.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r1@example.com>\r\nDATA\r\n")
        assert [r.code for r in smtp.read_replies(3)] == [250, 250, 354]
        smtp.send(first + b".\r\nMAIL FROM:<b@example.org>\r\nRCPT TO:<r2@example.com>\r\nDATA\r\n")
        queued1, mail, rcpt, data = smtp.read_replies(4)
        assert [r.code for r in (queued1, mail, rcpt, data)] == [250, 250, 250, 354]
        queued2 = smtp.finish_data(second)
        assert queued2.code == 250
    id1, id2 = queue_id_of(queued1), queue_id_of(queued2)
    assert id1 != id2
    assert default_server.stored_parts(id1)[1] == first
    assert default_server.stored_parts(id2)[1] == second
    assert default_server.queue_show(id2)["sender"] == "b@example.org"


def test_bare_lf_inside_a_command_line_does_not_split_it(default_server):
    """`RSET<LF>MAIL FROM:...<CRLF>` is one (bad) line, not two commands."""
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.send("RSET\nMAIL FROM:<x@example.org>\r\n")
        reply = smtp.read_reply()
        assert reply.code >= 500, str(reply)
        assert smtp.nothing_more_within(0.3), f"a second reply arrived: {smtp.buffer!r}"
        smtp.expect("RCPT TO:<r@example.com>", 503, "5.5.1")  # no MAIL was taken
