"""`petrel config check`, `petrel serve` on a bad file, and the queue CLI's exit codes."""

import os
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
    server.start()
    server.stop()
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
    # No queue yet: not an empty list, but an error naming the configuration that points there.
    result = server.cli("queue", "list")
    assert result.returncode == 1 and result.stdout == ""
    assert f"no queue at {server.queue_path}: queue.path of {server.config_path} (--config)" in result.stderr, result.stderr
    assert not server.queue_path.parent.exists()
    server.start()
    server.stop()
    assert server.queue_list() == []
    result = server.cli("queue", "list")
    assert result.returncode == 0 and result.stdout.strip().endswith("\n-- 0 messages"), result


def test_print_shows_absolute_paths(tmp_path):
    folder = tmp_path / "etc"
    folder.mkdir()
    write(folder, {"queue": {"path": "data/queue.sqlite"}, "auth": {"users_file": "../users"},
                   "delivery": {"smarthost_user": "u", "smarthost_password_file": "secret"}})
    (folder / "secret").write_text("password\n")
    # The file named relative to the working directory, as an operator types it.
    result = run_petrel("config", "check", "--config", "etc/petrel.toml", "--print", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f'path = "{folder}/data/queue.sqlite"' in result.stdout, result.stdout
    assert f'users_file = "{tmp_path}/users"' in result.stdout, result.stdout
    assert f'smarthost_password_file = "{folder}/secret"' in result.stdout, result.stdout
    defaults = run_petrel("config", "check", "--print", cwd=tmp_path,
                          env={key: value for key, value in os.environ.items() if key != "PETREL_CONFIG"})
    if not os.path.exists("/etc/petrel/petrel.toml"):
        assert defaults.returncode == 0 and f'path = "{tmp_path}/petrel-data/queue.sqlite"' in defaults.stdout, defaults


def ca_file_problems(folder):
    (folder / "garbage.pem").write_text("not a certificate\n")
    return {
        "missing CA file": ({"delivery": {"tls": "required", "tls_ca_file": "ca/missing.pem"}},
                            "delivery.tls_ca_file", f"cannot load {folder}/ca/missing.pem: no such file"),
        "CA file that is not PEM": ({"delivery": {"smarthost_tls": "required", "tls_ca_file": "garbage.pem"}},
                                    "delivery.tls_ca_file", f"cannot load {folder}/garbage.pem: not PEM CA certificates"),
        "missing certificate": ({"tls": {"certificate": "nope/cert.pem", "key": "nope/key.pem"}},
                                "tls.certificate", f"cannot load {folder}/nope/cert.pem"),
    }


@pytest.mark.parametrize("problem", ["missing CA file", "CA file that is not PEM", "missing certificate"])
def test_a_tls_file_that_cannot_be_used_stops_check_and_serve(tmp_path, problem):
    config, key, words = ca_file_problems(tmp_path)[problem]
    config = {**config, "inbound": {"listen": [f"127.0.0.1:{free_port()}"]}}
    path = write(tmp_path, config)
    checked = config_check(path)
    assert checked.returncode == 1, checked
    assert f"petrel: configuration error: {path}: {key}: " in checked.stderr and words in checked.stderr, checked.stderr
    served = subprocess.run([PETREL_BIN, "serve", "--config", str(path)], capture_output=True, text=True,
                            timeout=30, check=False, cwd=tmp_path)
    assert served.returncode == 1, served
    assert f"{path}: {key}: " in served.stderr and words in served.stderr, served.stderr


def test_usage_errors_exit_64(tmp_path):
    assert run_petrel("queue", "show", cwd=tmp_path).returncode == 64
    assert run_petrel("frobnicate", cwd=tmp_path).returncode == 64
    assert run_petrel("serve", "--no-such-flag", cwd=tmp_path).returncode == 64
