"""`petrel config check`, `petrel serve` on a bad file, and the queue CLI's exit codes."""

import subprocess

import pytest

from conftest import PETREL_BIN, PetrelServer, free_port, run_petrel, toml_document

GOOD_CONFIG = {
    "hostname": "relay.example.net",
    "inbound": {
        "listen": ["127.0.0.1:2525", "[::1]:2525"],
        "max_message_size": "25MB",
        "max_recipients": 100,
        "max_connections": 1000,
        "max_connections_per_client": 50,
        "command_timeout": "5m",
        "data_timeout": "10m",
        "max_received_headers": 100,
        "bare_line_endings": "normalize",
    },
    "access": {
        "client_networks": [],
        "relay_networks": ["127.0.0.0/8", "::1/128", "192.0.2.0/24"],
        "relay_domains": ["example.com"],
    },
    "queue": {"path": "petrel-data/queue.sqlite"},
    "delivery": {"max_queue_lifetime": "5d"},
}


def write(tmp_path, config, name="petrel.toml"):
    path = tmp_path / name
    path.write_text(toml_document(config) if isinstance(config, dict) else config)
    return path


def config_check(path):
    return run_petrel("config", "check", "--config", str(path), cwd=path.parent)


def test_good_config_passes_check(tmp_path):
    path = write(tmp_path, GOOD_CONFIG)
    result = config_check(path)
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_empty_config_passes_check(tmp_path):
    result = config_check(write(tmp_path, ""))
    assert result.returncode == 0, result.stderr


def test_unknown_key_is_named_with_the_file(tmp_path):
    path = write(tmp_path, "[inbound]\nbogus = 1\n", "bad.toml")
    result = config_check(path)
    assert result.returncode == 1
    assert "petrel: configuration error:" in result.stderr
    assert "inbound.bogus" in result.stderr
    assert "bad.toml" in result.stderr


@pytest.mark.parametrize("config, key", [
    ({"access": {"relay_networks": ["127.0.0.0/33"]}}, "access.relay_networks"),
    ({"access": {"relay_networks": ["not-a-network"]}}, "access.relay_networks"),
    ({"access": {"client_networks": ["10.0.0.0/8", "::1/129"]}}, "access.client_networks"),
    ({"inbound": {"max_message_size": "lots"}}, "inbound.max_message_size"),
    ({"inbound": {"max_recipients": 0}}, "inbound.max_recipients"),
    ({"inbound": {"command_timeout": "5 parsecs"}}, "inbound.command_timeout"),
    ({"inbound": {"bare_line_endings": "sometimes"}}, "inbound.bare_line_endings"),
    ({"inbound": {"listen": ["127.0.0.1"]}}, "inbound.listen"),
    ({"delivery": {"max_queue_lifetime": "0s"}}, "delivery.max_queue_lifetime"),
    ({"frobnicate": {"x": 1}}, "frobnicate"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_bad_value_is_named(tmp_path, config, key):
    path = write(tmp_path, config, "bad.toml")
    result = config_check(path)
    assert result.returncode == 1, result.stdout
    assert key in result.stderr, result.stderr
    assert "bad.toml" in result.stderr


def test_toml_syntax_error_is_reported(tmp_path):
    path = write(tmp_path, "[inbound\nmax_recipients = \n", "broken.toml")
    result = config_check(path)
    assert result.returncode == 1
    assert "petrel: configuration error:" in result.stderr and "broken.toml" in result.stderr


def test_serve_refuses_a_bad_config(tmp_path):
    port = free_port()
    path = write(tmp_path, f'[inbound]\nlisten = ["127.0.0.1:{port}"]\nbogus = 1\n', "bad.toml")
    result = subprocess.run([PETREL_BIN, "serve", "--config", str(path)], capture_output=True, text=True,
                            timeout=30, check=False)
    assert result.returncode == 1
    assert "petrel: configuration error:" in result.stderr
    assert "inbound.bogus" in result.stderr and "bad.toml" in result.stderr


def test_queue_show_of_unknown_id_exits_1(tmp_path):
    server = PetrelServer(tmp_path)
    server.port = free_port()
    server.write_config()
    result = server.cli("queue", "show", "NOSUCHID")
    assert result.returncode == 1
    assert "NOSUCHID" in result.stderr
    result = server.cli("queue", "show", "NOSUCHID", "--json")
    assert result.returncode == 1
    assert result.stdout.strip() == ""


def test_queue_list_of_an_empty_queue(tmp_path):
    server = PetrelServer(tmp_path)
    server.port = free_port()
    server.write_config()
    assert server.queue_list() == []
    result = server.cli("queue", "list")
    assert result.returncode == 0, result.stderr


def test_usage_errors_exit_64(tmp_path):
    assert run_petrel("queue", "show", cwd=tmp_path).returncode == 64
    assert run_petrel("frobnicate", cwd=tmp_path).returncode == 64
    assert run_petrel("serve", "--no-such-flag", cwd=tmp_path).returncode == 64
