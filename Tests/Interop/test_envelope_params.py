"""ESMTP parameters of MAIL and RCPT (SIZE, BODY, SMTPUTF8, RET, ENVID, NOTIFY, ORCPT), the null
sender and source routes: each is accepted on the wire and stored in the queue."""

import datetime

from conftest import SMTPConversation, queue_id_of, simple_message


def send_raw_transaction(server, mail_line, rcpt_lines, text=None):
    """EHLO, then the given MAIL and RCPT lines (each must get 250), DATA, text; returns the queue id."""
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect(mail_line, 250, "2.1.0")
        for line in rcpt_lines:
            smtp.expect(line, 250, "2.1.5")
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(text or simple_message())
        assert reply.code == 250 and reply.enhanced == "2.0.0", str(reply)
        smtp.expect("QUIT", 221, "2.0.0")
        return queue_id_of(reply)


def test_dsn_and_size_parameters_are_stored(default_server):
    queue_id = send_raw_transaction(
        default_server,
        "MAIL FROM:<dsn@example.org> RET=HDRS ENVID=abc+2Bdef SIZE=100 BODY=8BITMIME",
        ["RCPT TO:<x@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y"],
    )
    message = default_server.queue_show(queue_id)
    assert message["dsn_ret"] == "HDRS"
    assert message["dsn_envid"] == "abc+2Bdef"  # kept in xtext form
    assert message["body_type"] == "8BITMIME"
    assert message["smtputf8"] is False
    recipient = message["recipients"][0]
    assert recipient["address"] == "x@example.com"
    assert recipient["notify"] == "SUCCESS,FAILURE"
    assert recipient["original_recipient"] == "rfc822;x@y"


def test_notify_never_and_ret_full_and_7bit_are_stored(default_server):
    queue_id = send_raw_transaction(
        default_server,
        "MAIL FROM:<dsn@example.org> RET=FULL BODY=7BIT",
        ["RCPT TO:<never@example.com> NOTIFY=NEVER", "RCPT TO:<delay@example.com> NOTIFY=DELAY"],
    )
    message = default_server.queue_show(queue_id)
    assert message["dsn_ret"] == "FULL"
    assert message["body_type"] == "7BIT"
    notify = {r["address"]: r["notify"] for r in message["recipients"]}
    assert notify == {"never@example.com": "NEVER", "delay@example.com": "DELAY"}


def test_parameters_not_given_are_not_invented(default_server):
    queue_id = send_raw_transaction(default_server, "MAIL FROM:<plain@example.org>", ["RCPT TO:<p@example.com>"])
    message = default_server.queue_show(queue_id)
    for key in ["dsn_ret", "dsn_envid", "body_type", "auth_user"]:
        assert message.get(key) is None, f"{key} = {message.get(key)!r}"
    recipient = message["recipients"][0]
    assert recipient.get("notify") is None
    assert recipient.get("original_recipient") is None


def test_null_sender_is_stored_as_empty_string(default_server):
    queue_id = send_raw_transaction(default_server, "MAIL FROM:<>", ["RCPT TO:<bounce@example.com>"])
    message = default_server.queue_show(queue_id)
    assert message["sender"] == ""
    assert [r["address"] for r in message["recipients"]] == ["bounce@example.com"]


def test_source_route_is_accepted_and_ignored(default_server):
    queue_id = send_raw_transaction(
        default_server,
        "MAIL FROM:<@relay1.example,@relay2.example:sender@example.org>",
        ["RCPT TO:<@hop.example:user@example.com>"],
    )
    message = default_server.queue_show(queue_id)
    assert message["sender"] == "sender@example.org"
    assert [r["address"] for r in message["recipients"]] == ["user@example.com"]


def test_smtputf8_parameter_is_stored(default_server):
    queue_id = send_raw_transaction(
        default_server, "MAIL FROM:<ö@example.org> SMTPUTF8", ["RCPT TO:<ü@example.com>"],
    )
    message = default_server.queue_show(queue_id)
    assert message["smtputf8"] is True
    assert message["sender"] == "ö@example.org"


def test_non_ascii_sender_without_smtputf8_is_refused(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<ö@example.org>", 553, "5.6.7")
        smtp.expect("MAIL FROM:<o@example.org>", 250, "2.1.0")


def test_bad_parameters_are_refused_and_the_session_goes_on(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org> FROBNICATE=1", 555, "5.5.4")
        smtp.expect("MAIL FROM:<a@example.org> RET=MAYBE", 501, "5.5.4")
        smtp.expect("MAIL FROM:<a@example.org> ENVID=bad+zz", 501, "5.5.4")
        smtp.expect("MAIL FROM:<a@example.org>", 250, "2.1.0")
        smtp.expect("RCPT TO:<r@example.com> NOTIFY=SOMETIMES", 501, "5.5.4")
        smtp.expect("RCPT TO:<r@example.com> NOTIFY=NEVER,SUCCESS", 501, "5.5.4")
        smtp.expect("RCPT TO:<r@example.com>", 250, "2.1.5")


def test_other_commands_reply_as_documented(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.expect("MAIL FROM:<early@example.org>", 503, "5.5.1")
        smtp.ehlo()
        smtp.expect("NOOP", 250, "2.0.0")
        smtp.expect("RSET", 250, "2.0.0")
        smtp.expect("VRFY postmaster", 252, "2.5.0")
        smtp.expect("HELP", 214, "2.0.0")
        smtp.expect("FROB", 500, "5.5.2")
        smtp.expect("RCPT TO:<r@example.com>", 503, "5.5.1")
        smtp.expect("QUIT", 221, "2.0.0")
        assert smtp.wait_for_close() == b""


def test_expiry_follows_max_queue_lifetime(petrel_server):
    server = petrel_server({"delivery": {"max_queue_lifetime": "2d", "smarthost": "127.0.0.1:9", "retry_min": "1h", "retry_max": "1h"}})
    queue_id = send_raw_transaction(server, "MAIL FROM:<a@example.org>", ["RCPT TO:<r@example.com>"])
    message = server.queue_show(queue_id)
    arrived = datetime.datetime.fromisoformat(message["arrived_at"].replace("Z", "+00:00"))
    expires = datetime.datetime.fromisoformat(message["expires_at"].replace("Z", "+00:00"))
    assert abs((expires - arrived).total_seconds() - 2 * 86400) <= 1, (arrived, expires)
    assert abs((datetime.datetime.now(datetime.timezone.utc) - arrived).total_seconds()) < 120
