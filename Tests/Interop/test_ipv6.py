"""An IPv6 listener on [::1]."""

import smtplib
import socket

import pytest

from conftest import queue_id_of, simple_message


def ipv6_loopback_available() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback (::1) on this machine")


def test_ipv6_listener_accepts_and_records_the_client(petrel_server):
    server = petrel_server(listen_host="::1")
    with smtplib.SMTP("::1", server.port, local_hostname="v6.client.test", timeout=10) as client:
        client.ehlo("v6.client.test")
        assert client.mail("six@example.org")[0] == 250
        assert client.rcpt("r@example.com")[0] == 250  # ::1/128 is in the default relay_networks
        code, answer = client.data(simple_message("over IPv6"))
    assert code == 250, answer
    queue_id = queue_id_of(answer.decode())
    message = server.queue_show(queue_id)
    assert message["client_address"] == "::1"
    trace, _ = server.stored_parts(queue_id)
    assert b"[IPv6:::1]" in trace, trace


def test_ipv6_client_outside_relay_networks_cannot_relay(petrel_server):
    server = petrel_server({"access": {"relay_networks": ["127.0.0.0/8"]}}, listen_host="::1")
    with smtplib.SMTP("::1", server.port, timeout=10) as client:
        client.ehlo("v6.client.test")
        assert client.mail("six@example.org")[0] == 250
        code, text = client.rcpt("r@example.com")
    assert code == 550 and text.startswith(b"5.7.1"), (code, text)
