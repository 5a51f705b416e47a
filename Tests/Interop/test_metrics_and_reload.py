"""The operator's view of a running relay: the Prometheus endpoint, checked against what the test did,
and SIGHUP reloads, including the refusal of a bad configuration while the old one keeps running."""

from __future__ import annotations

import re
import signal
import time
import urllib.request

from conftest import SMTPConversation, free_port, loopback_alias_usable, simple_message, toml_document

import pytest


def scrape(port: int) -> dict:
    """Metric samples as {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def wait_for(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


def test_metrics_count_what_the_clients_did(petrel_server):
    metrics_port = free_port()
    server = petrel_server({"metrics": {"listen": f"127.0.0.1:{metrics_port}"},
                            "access": {"relay_networks": ["127.0.0.1/32"]}})
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz", timeout=5) as response:
        assert response.status == 200 and response.read() == b"ok\n"
    # The harness's readiness probe has connected already: count from here.
    base_connections = scrape(metrics_port).get('petrel_connections_total{listener="relay"}', 0)

    for number in range(3):
        with SMTPConversation(server.address) as smtp:
            smtp.ehlo()
            smtp.send_mail("a@example.org", ["b@example.com"], simple_message(f"m{number}"))
    refused = 0
    if loopback_alias_usable("127.0.0.2"):
        with SMTPConversation(server.address, source_address=("127.0.0.2", 0)) as stranger:
            stranger.ehlo()
            stranger.expect("MAIL FROM:<a@example.org>", 250)
            stranger.expect("RCPT TO:<b@example.com>", 550, "5.7.1")
            refused = 1

    def counted():
        samples = scrape(metrics_port)
        return samples.get("petrel_messages_accepted_total") == 3
    assert wait_for(counted), scrape(metrics_port)
    samples = scrape(metrics_port)
    assert samples['petrel_connections_total{listener="relay"}'] - base_connections == 3 + refused
    assert samples["petrel_accepted_bytes_total"] > 3 * len(simple_message("m0"))
    assert samples.get('petrel_messages_rejected_total{code="550"}', 0) == refused
    assert samples["petrel_group_commit_batch_size_count"] >= 1
    # The smarthost refuses connections: the attempts are counted as deferred.
    assert wait_for(lambda: scrape(metrics_port).get('petrel_delivery_attempts_total{result="deferred"}', 0) >= 3)
    # The queue gauges are refreshed every 10 s.
    assert wait_for(lambda: scrape(metrics_port).get("petrel_queue_messages") == 3, timeout=15)
    assert scrape(metrics_port)['petrel_queue_recipients{state="deferred"}'] == 3
    assert scrape(metrics_port)["petrel_queue_oldest_message_age_seconds"] >= 0
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/nothing", timeout=5)


@pytest.mark.skipif(not loopback_alias_usable("127.0.0.2"), reason="needs 127.0.0.2 on the loopback interface")
def test_sighup_applies_new_access_lists_without_dropping_a_session(petrel_server):
    server = petrel_server({"access": {"relay_networks": ["127.0.0.1/32"]}})
    # A session open across the reload keeps its rules and its connection.
    with SMTPConversation(server.address, source_address=("127.0.0.2", 0)) as before:
        before.ehlo()
        before.expect("MAIL FROM:<a@example.org>", 250)
        before.expect("RCPT TO:<b@example.com>", 550, "5.7.1")

        server.config["access"]["relay_networks"] = ["127.0.0.0/8"]
        server.config_path.write_text(toml_document(server.config))
        server.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in server.log_text())

        before.expect("NOOP", 250)
        before.expect("RCPT TO:<b@example.com>", 550, "5.7.1")
    with SMTPConversation(server.address, source_address=("127.0.0.2", 0)) as after:
        after.ehlo()
        after.expect("MAIL FROM:<a@example.org>", 250)
        after.expect("RCPT TO:<b@example.com>", 250)


def assert_takes_two_recipients(server) -> None:
    """The configuration the reload tests start with (`max_recipients = 2`) is the one in force."""
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<a@example.org>", 250)
        smtp.expect("RCPT TO:<b1@example.com>", 250)
        smtp.expect("RCPT TO:<b2@example.com>", 250)
        smtp.expect("RCPT TO:<b3@example.com>", 452, "4.5.3")


def test_a_bad_reload_is_refused_and_the_old_configuration_keeps_running(petrel_server):
    server = petrel_server({"inbound": {"max_recipients": 2}})
    good = server.config_path.read_text()
    server.config_path.write_text(good + "\n[inbound_typo]\nmax = 1\n")
    server.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "configuration reload refused" in server.log_text())
    assert "inbound_typo" in server.log_text()
    assert server.process.poll() is None
    assert_takes_two_recipients(server)


def test_a_reload_to_a_tls_file_that_cannot_be_used_is_refused(petrel_server):
    server = petrel_server({"inbound": {"max_recipients": 2}})
    good = server.config_path.read_text()
    bad = good.replace("max_recipients = 2", "max_recipients = 5").replace(
        "[delivery]\n", '[delivery]\ntls = "required"\ntls_ca_file = "private-ca.pem"\n')
    assert bad != good and "tls_ca_file" in bad
    server.config_path.write_text(bad)
    server.send_signal(signal.SIGHUP)
    assert wait_for(lambda: "configuration reload refused" in server.log_text())
    [line] = [line for line in server.log_text().splitlines() if "configuration reload refused" in line]
    assert f"config={server.config_path}" in line, line
    assert f"delivery.tls_ca_file: cannot load {server.folder}/private-ca.pem: no such file" in line, line
    assert server.process.poll() is None
    # The old configuration stays, the whole of it.
    assert_takes_two_recipients(server)
