"""relay_networks, relay_domains and client_networks, seen from two loopback sources: 127.0.0.1 (the
relay network in these tests) and 127.0.0.2 (an outsider)."""

import smtplib

import pytest

from conftest import SMTPConversation, loopback_alias_usable, queue_id_of, simple_message

OUTSIDER = ("127.0.0.2", 0)
INSIDER = ("127.0.0.1", 0)

pytestmark = pytest.mark.skipif(not loopback_alias_usable("127.0.0.2"), reason="127.0.0.2 cannot be bound here")

RELAY_TRICKS = [
    "user%other.example@local.example",
    '"user@other.example"@local.example',
    "other.example!user@local.example",
    "user@[192.0.2.1]",
    "user@[IPv6:2001:db8::1]",
    "@local.example:user@other.example",
    "@local.example,@local.example:user%other.example@local.example",
]


@pytest.fixture
def relay_server(petrel_server):
    return petrel_server({
        "access": {"relay_networks": ["127.0.0.1/32"], "relay_domains": ["local.example"]},
    })


def test_outsider_cannot_relay_to_an_outside_domain(relay_server):
    with SMTPConversation(relay_server.address, source_address=OUTSIDER) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250, "2.1.0")
        reply = smtp.expect("RCPT TO:<victim@outside.example>", 550, "5.7.1")
        assert "<victim@outside.example>: Relay access denied" in reply.text


def test_outsider_may_send_to_a_relay_domain(relay_server):
    with SMTPConversation(relay_server.address, source_address=OUTSIDER) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["user@local.example", "other@LOCAL.example"], simple_message())
    message = relay_server.queue_show(queue_id)
    assert message["client_address"] == "127.0.0.2"
    assert [r["address"] for r in message["recipients"]] == ["user@local.example", "other@LOCAL.example"]


@pytest.mark.parametrize("recipient", RELAY_TRICKS)
def test_outsider_relay_tricks_are_denied(relay_server, recipient):
    with SMTPConversation(relay_server.address, source_address=OUTSIDER) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250, "2.1.0")
        smtp.expect(f"RCPT TO:<{recipient}>", 550, "5.7.1")
        # The transaction is still usable for a legitimate recipient.
        smtp.expect("RCPT TO:<user@local.example>", 250, "2.1.5")


def test_outsider_with_only_denied_recipients_gets_no_message_through(relay_server):
    before = relay_server.queue_ids()
    with SMTPConversation(relay_server.address, source_address=OUTSIDER) as smtp:
        smtp.ehlo()
        # Pipelined, as a spammer would: DATA after only refused RCPTs must fail (RFC 2920 §3.1).
        smtp.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<v@outside.example>\r\nDATA\r\n")
        mail, rcpt, data = smtp.read_replies(3)
        assert (mail.code, rcpt.code) == (250, 550)
        assert data.code in (503, 554), str(data)
        smtp.expect("NOOP", 250, "2.0.0")
    assert relay_server.queue_ids() == before


def test_relay_network_client_may_relay_anywhere(relay_server):
    with SMTPConversation(relay_server.address, source_address=INSIDER) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["victim@outside.example", "user@[192.0.2.1]"], simple_message())
    message = relay_server.queue_show(queue_id)
    assert [r["address"] for r in message["recipients"]] == ["victim@outside.example", "user@[192.0.2.1]"]


def test_smtplib_from_outsider_is_refused_by_recipient(relay_server):
    with smtplib.SMTP("127.0.0.1", relay_server.port, source_address=OUTSIDER, timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("a@example.org", ["victim@outside.example"], simple_message())
    code, text = refused.value.recipients["victim@outside.example"]
    assert code == 550 and text.startswith(b"5.7.1")


def test_client_networks_refuse_others_at_connect(petrel_server):
    server = petrel_server({"access": {"client_networks": ["127.0.0.1/32"]}})
    with SMTPConversation(server.address, source_address=OUTSIDER) as outsider:
        assert outsider.greeting.code == 421, str(outsider.greeting)
        assert outsider.greeting.enhanced == "4.7.0"
        assert outsider.wait_for_close() == b""
    with SMTPConversation(server.address, source_address=INSIDER) as insider:
        assert insider.greeting.code == 220
        insider.ehlo()
        queue_id = insider.send_mail("a@example.org", ["r@example.com"], simple_message())
    assert server.queue_show(queue_id) is not None


def test_non_relay_client_gets_no_date_or_message_id_added(relay_server):
    with SMTPConversation(relay_server.address, source_address=OUTSIDER) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["user@local.example"],
                                  simple_message(with_date_and_id=False))
    trace, _ = relay_server.stored_parts(queue_id)
    assert trace.startswith(b"Received: ")
    assert b"\r\nDate:" not in trace and b"\r\nMessage-ID:" not in trace, trace
