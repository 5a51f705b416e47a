"""Real SMTP clients (swaks, Python's smtplib, curl) against the real server; the queue CLI finds what
they sent."""

import smtplib
import subprocess

from conftest import HOSTNAME, queue_id_of, simple_message

MESSAGE_KEYS = {
    "queue_id", "sender", "size", "arrived_at", "expires_at", "client_address", "client_helo", "protocol",
    "auth_user", "body_type", "smtputf8", "dsn_ret", "dsn_envid", "held", "recipients",
}
RECIPIENT_KEYS = {
    "address", "original_recipient", "notify", "state", "attempts", "next_attempt_at", "last_attempt_at",
    "last_reply", "last_relay",
}


def run_swaks(server, *args, timeout=30):
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{server.port}", "--timeout", "10", *args],
        capture_output=True, text=True, timeout=timeout, check=False,
    )


def test_swaks_message_is_queued_with_its_envelope(default_server):
    result = run_swaks(default_server, "--to", "user@example.com", "--from", "a@example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    queue_id = queue_id_of(result.stdout)

    message = default_server.queue_show(queue_id)
    assert message is not None, f"queue show does not find {queue_id}"
    assert message["queue_id"] == queue_id
    assert message["sender"] == "a@example.org"
    assert [r["address"] for r in message["recipients"]] == ["user@example.com"]
    assert message["recipients"][0]["state"] in ("queued", "deferred")  # the first attempt may already have run
    assert message["recipients"][0]["attempts"] in (0, 1)
    assert message["client_address"] == "127.0.0.1"
    assert message["protocol"] == "ESMTP"
    assert message["held"] is False


def test_swaks_greeting_and_ehlo_advertise_the_extensions(default_server):
    result = run_swaks(default_server, "--to", "user@example.com", "--from", "a@example.org", "--quit-after", "EHLO")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"<-  220 {HOSTNAME} ESMTP" in result.stdout
    for extension in ["PIPELINING", "SIZE ", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "DSN"]:
        assert f"<-  250-{extension}" in result.stdout or f"<-  250 {extension}" in result.stdout, extension


def test_swaks_with_pipelining_is_queued(default_server):
    result = run_swaks(default_server, "--pipeline", "--to", "p1@example.com,p2@example.net",
                       "--from", "pipe@example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    queue_id = queue_id_of(result.stdout)
    message = default_server.queue_show(queue_id)
    assert message is not None
    assert sorted(r["address"] for r in message["recipients"]) == ["p1@example.com", "p2@example.net"]


def test_show_json_has_every_documented_key(default_server):
    result = run_swaks(default_server, "--to", "keys@example.com", "--from", "a@example.org")
    assert result.returncode == 0, result.stdout + result.stderr
    message = default_server.queue_show(queue_id_of(result.stdout))
    missing = MESSAGE_KEYS - message.keys()
    assert not missing, f"queue show --json lacks keys {sorted(missing)}: {message}"
    missing_recipient = RECIPIENT_KEYS - message["recipients"][0].keys()
    assert not missing_recipient, f"recipient lacks keys {sorted(missing_recipient)}: {message['recipients'][0]}"


def test_smtplib_sendmail_to_three_recipients(default_server):
    recipients = ["one@example.com", "two@example.net", "three@example.org"]
    before = default_server.queue_ids()
    with smtplib.SMTP("127.0.0.1", default_server.port, local_hostname="smtplib.test", timeout=10) as client:
        refused = client.sendmail("sender@example.org", recipients, simple_message("three"))
    assert refused == {}
    new = default_server.queue_ids() - before
    assert len(new) == 1, f"expected one new message, got {new}"
    message = default_server.queue_show(new.pop())
    assert message["sender"] == "sender@example.org"
    assert [r["address"] for r in message["recipients"]] == recipients
    assert message["client_helo"] == "smtplib.test"


def test_smtplib_data_reply_names_the_queue_id(default_server):
    with smtplib.SMTP("127.0.0.1", default_server.port, timeout=10) as client:
        code, _ = client.ehlo("smtplib.test")
        assert code == 250
        assert client.has_extn("pipelining") and client.has_extn("dsn") and client.has_extn("smtputf8")
        assert client.mail("sender@example.org")[0] == 250
        assert client.rcpt("r@example.com")[0] == 250
        code, text = client.data(simple_message("data reply"))
    assert code == 250, text
    queue_id = queue_id_of(text.decode())
    assert default_server.queue_show(queue_id) is not None


def test_smtplib_helo_is_recorded_as_smtp(default_server):
    with smtplib.SMTP("127.0.0.1", default_server.port, timeout=10) as client:
        assert client.helo("old.client.test")[0] == 250
        assert client.mail("old@example.org")[0] == 250
        assert client.rcpt("r@example.com")[0] == 250
        code, text = client.data(simple_message("helo"))
    assert code == 250, text
    message = default_server.queue_show(queue_id_of(text.decode()))
    assert message["protocol"] == "SMTP"
    assert message["client_helo"] == "old.client.test"


def test_smtplib_smtputf8_addresses_are_stored(default_server):
    body = "From: jörg@example.org\r\nSubject: grüße\r\n\r\nÄpfel\r\n".encode("utf-8")
    with smtplib.SMTP("127.0.0.1", default_server.port, timeout=10) as client:
        client.ehlo("smtplib.test")
        assert client.mail("jörg@example.org", ["SMTPUTF8", "BODY=8BITMIME"])[0] == 250
        assert client.rcpt("ünïcode@exämple.com")[0] == 250
        code, text = client.data(body)
    assert code == 250, text
    queue_id = queue_id_of(text.decode())
    message = default_server.queue_show(queue_id)
    assert message["sender"] == "jörg@example.org"
    assert message["recipients"][0]["address"] == "ünïcode@exämple.com"
    assert message["smtputf8"] is True
    assert message["body_type"] == "8BITMIME"
    assert default_server.stored_parts(queue_id)[1] == body


def test_curl_upload_is_queued(default_server, tmp_path):
    upload = tmp_path / "mail.eml"
    upload.write_bytes(simple_message("from curl", "Sent by curl.\r\n"))
    before = default_server.queue_ids()
    result = subprocess.run(
        ["curl", "-sS", "-v", "--max-time", "20", f"smtp://127.0.0.1:{default_server.port}/curl.test",
         "--mail-from", "curl@example.org", "--mail-rcpt", "c1@example.com", "--mail-rcpt", "c2@example.com",
         "--upload-file", str(upload)],
        capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 0, result.stderr
    queue_id = queue_id_of(result.stderr)
    assert default_server.queue_ids() - before == {queue_id}
    message = default_server.queue_show(queue_id)
    assert message["sender"] == "curl@example.org"
    assert [r["address"] for r in message["recipients"]] == ["c1@example.com", "c2@example.com"]
    assert message["client_helo"] == "curl.test"
    assert b"Sent by curl.\r\n" in default_server.stored_text(queue_id)
