"""SIGTERM: idle sessions are told 421 4.3.2, a message in progress is finished first, and the process
exits 0."""

import re
import signal
import socket
import time

import pytest

from conftest import SMTPConversation, free_port, queue_id_of, run_petrel, simple_message, toml_document


def test_sigterm_tells_idle_clients_and_exits_zero(petrel_server):
    server = petrel_server()
    with SMTPConversation(server.address) as idle, SMTPConversation(server.address) as greeted_only:
        idle.ehlo()
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        for smtp in (idle, greeted_only):
            reply = smtp.read_reply()
            assert (reply.code, reply.enhanced) == (421, "4.3.2"), str(reply)
            assert smtp.wait_for_close() == b""
        assert server.wait(timeout=10) == 0, server.log_text()
        assert time.monotonic() - started < 10


def test_sigterm_with_no_clients_exits_zero(petrel_server):
    server = petrel_server()
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0, server.log_text()


def test_sigterm_during_data_finishes_the_message_first(petrel_server):
    server = petrel_server()
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<late@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        text = simple_message("in flight during shutdown")
        smtp.send(text[:40])
        server.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        smtp.send(text[40:] + b".\r\n")
        queued = smtp.read_reply()
        assert queued.code == 250, str(queued)
        bye = smtp.read_reply()
        assert (bye.code, bye.enhanced) == (421, "4.3.2"), str(bye)
        assert smtp.wait_for_close() == b""
    assert server.wait(timeout=10) == 0, server.log_text()
    queue_id = queue_id_of(queued)
    assert server.queue_show(queue_id) is not None
    assert server.stored_parts(queue_id)[1] == text


def test_restart_after_clean_shutdown_keeps_the_queue(petrel_server):
    server = petrel_server()
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
    assert server.stop() == 0
    server.restart()
    assert server.queue_show(queue_id) is not None
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        second = smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
    assert server.queue_ids() == {queue_id, second}


def test_sigterm_with_a_stalled_message_exits_once_data_timeout_passes(petrel_server):
    """A client that stops sending in the middle of a message holds shutdown only until data_timeout."""
    server = petrel_server({"inbound": {"data_timeout": "2s"}})
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<stalled@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        smtp.send(b"Subject: never finished\r\n\r\npartial")
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        reply = smtp.read_reply()
        assert reply.code == 421 and reply.enhanced in ("4.4.2", "4.3.2"), str(reply)
        assert smtp.wait_for_close() == b""
    assert server.wait(timeout=10) == 0, server.log_text()
    assert time.monotonic() - started < 10
    assert server.queue_list() == []


def warnings_in(log: str) -> list:
    return [line for line in log.splitlines() if re.search(r"Z (warning|error|critical) ", line)]


@pytest.mark.parametrize("delay", [0.0, 0.3, 1.2])
def test_a_normal_shutdown_logs_no_warnings(petrel_server, delay):
    """Whatever each service is doing when SIGTERM comes (the queue gauges' and the feeder's reads, the
    operator log's look at the queue), stopping it is not a problem to report."""
    server = petrel_server({"metrics": {"listen": f"127.0.0.1:{free_port()}"}})
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.send_mail("a@example.org", ["b@example.com"], simple_message("deferred"))
    time.sleep(delay)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=10) == 0, server.log_text()
    log = server.log_text()
    assert "petrel stopped" in log
    assert warnings_in(log) == [], log


@pytest.mark.parametrize("key", ["inbound.listen", "inbound.submission_listen", "metrics.listen"])
def test_a_listener_that_cannot_bind_says_where_and_why(tmp_path, key):
    """One line an operator can act on: the address, the key, what is wrong; and a non-zero exit."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        section, name = key.split(".")
        config = {"hostname": "relay.test.invalid", "queue": {"path": "data/queue.sqlite"},
                  "inbound": {"listen": [f"127.0.0.1:{free_port()}"]}}
        config.setdefault(section, {})[name] = [address] if name.endswith("listen") and section == "inbound" else address
        path = tmp_path / "petrel.toml"
        path.write_text(toml_document(config))
        result = run_petrel("serve", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1, result
    errors = [line for line in result.stderr.splitlines() if not re.match(r"^\d{4}-\d\d-\d\dT", line)]
    assert errors == [f"petrel: cannot listen on {address} ({key}): address already in use"], result.stderr
    assert warnings_in(result.stderr) == [], result.stderr
