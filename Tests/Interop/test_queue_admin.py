"""The operator's queue administration (`petrel queue list|show|stats|hold|release|retry|delete|bounce`)
against the real binary and a real queue, both while a server runs on it and while it is stopped.

Every relay here delivers through a smarthost: a scriptable SMTP sink on 127.0.0.1 that accepts `ok*`
recipients, defers `later*` (451) and refuses `bad*` (550). Bounces go to the same sink, so they can be
caught. The concurrency tests hold the sink's reply to DATA, act on the message while it is being
delivered, then let the attempt end delivered or deferred, and check the end state: delivered once or
acted on, never both, never lost.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import os
import pwd
import re
import threading
import time
from typing import Callable, Optional

import pytest

from conftest import wait_until as conftest_wait_until
from conftest import HOSTNAME, PetrelServer, SMTPConversation, free_port, run_petrel
from smtp_sink import SMTPSink

SENDER = "sender@sender.test"
WAIT = 15.0

MESSAGE_KEYS = {
    "queue_id", "sender", "size", "arrived_at", "expires_at", "client_address", "client_helo", "protocol",
    "auth_user", "body_type", "smtputf8", "dsn_ret", "dsn_envid", "held", "recipients",
}
RECIPIENT_KEYS = {
    "address", "original_recipient", "notify", "state", "attempts", "next_attempt_at", "last_attempt_at",
    "last_reply", "last_relay", "last_error", "in_delivery", "pending_action",
}
SHOW_KEYS = MESSAGE_KEYS | {"headers", "body"}
STATS_KEYS = {"messages", "recipients", "top_deferred_domains", "top_deferred_errors", "oldest_message",
              "total_bytes", "pending_actions"}
ACTION_KEYS = {"action", "results"}
RESULT_KEYS = {"queue_id", "result", "recipients", "in_delivery", "notification", "removed"}


# ---------------------------------------------------------------------------------------------------
# Helpers


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, what: str = "condition",
               server: Optional[PetrelServer] = None, interval: float = 0.1):
    return conftest_wait_until(predicate, timeout, what, server, interval)


_subjects = itertools.count(1)


def submit(server: PetrelServer, recipients, sender: str = SENDER) -> tuple:
    """Sends one message; returns (queue id, subject)."""
    recipients = [recipients] if isinstance(recipients, str) else list(recipients)
    subject = f"queue admin test {next(_subjects)} {time.monotonic_ns()}"
    text = (f"From: <{sender}>\r\nTo: <{recipients[0]}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{time.monotonic_ns()}@sender.test>\r\n\r\nHello.\r\n").encode()
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        queue_id = smtp.send_mail(sender, recipients, text)
        smtp.command("QUIT")
    return queue_id, subject


def cli_json(server: PetrelServer, *args: str, expect: int = 0):
    result = server.cli("queue", *args, "--json")
    assert result.returncode == expect, f"queue {' '.join(args)} --json exited {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def act(server: PetrelServer, action: str, *args: str, expect: int = 0) -> dict:
    """`petrel queue ACTION ... --json`, its shape checked; returns the results by queue id."""
    report = cli_json(server, action, *args, expect=expect)
    assert set(report) == ACTION_KEYS, report
    assert report["action"] == action
    for result in report["results"]:
        assert set(result) == RESULT_KEYS, result
    return {result["queue_id"]: result for result in report["results"]}


def originals(sink: SMTPSink, subject: str) -> list:
    return [m for m in sink.snapshot() if m.mail_from != "" and m.header("Subject") == subject]


def bounces(sink: SMTPSink) -> list:
    """Notifications the relay sent (null reverse path), parsed."""
    return [email.message_from_bytes(m.data, policy=email.policy.compat32) for m in sink.snapshot() if m.mail_from == ""]


def bounce_reporting(sink: SMTPSink, queue_id: str) -> list:
    """The bounces whose text names this queue id (in the returned original's Received: header)."""
    return [m for m in sink.snapshot() if m.mail_from == "" and queue_id.encode() in m.data]


def flat(text) -> str:
    """Text with every run of whitespace (folding, wrapping) as one space."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return " ".join(text.split())


def recipient_states(message: dict) -> dict:
    return {r["address"]: r["state"] for r in message["recipients"]}


OPERATOR = pwd.getpwuid(os.getuid()).pw_name


def audit_lines(server: PetrelServer, queue_id: str) -> list:
    """The server's log lines that record an operator's action on this message."""
    return [line for line in server.log_text().splitlines() if f"{queue_id}: " in line and " by operator " in line]


def wait_for_audit(server: PetrelServer, queue_id: str, text: str) -> str:
    """Waits for the one audit line of this message that holds `text`, and returns it."""
    [line] = wait_until(lambda: [line for line in audit_lines(server, queue_id) if text in line],
                        what=f"the log line '{queue_id}: {text}'", server=server)
    return line


def attempted(server: PetrelServer, queue_id: str) -> bool:
    message = server.queue_show(queue_id)
    return message is not None and all(r["attempts"] >= 1 for r in message["recipients"] if r["state"] != "delivered")


class Lab:
    """A sink as smarthost and relays that deliver to it, with the short timers of the delivery tests."""

    def __init__(self, folder):
        self.folder = folder
        self.port = free_port()
        self.sink = SMTPSink("127.0.0.1", self.port, name="smarthost.test")
        self.sink.rcpt_reply = self.rcpt_reply
        self.sink.start()
        self.relays: list = []

    @staticmethod
    def rcpt_reply(address: str, attempt: int) -> Optional[str]:
        local = address.split("@")[0].lower()
        if local.startswith("later"):
            return "451 4.2.0 Mailbox busy, try later"
        if local.startswith("bad"):
            return "550 5.1.1 No such user"
        if local.startswith("full"):
            return "452 4.2.2 The mailbox of this recipient is over its allotted storage quota and cannot take more mail today"
        return None

    def relay(self, start: bool = True) -> PetrelServer:
        relay = PetrelServer(self.folder / f"relay{len(self.relays)}", {
            "delivery": {
                "smarthost": f"127.0.0.1:{self.port}", "retry_min": "1s", "retry_max": "2s",
                "command_timeout": "3s", "data_timeout": "5s",
            },
        })
        self.relays.append(relay)
        if start:
            relay.start()
        else:
            relay.port = free_port()
            relay.write_config()
        return relay

    def close(self) -> None:
        for relay in self.relays:
            try:
                relay.stop()
            except Exception:  # noqa: BLE001 - teardown must reach everything
                relay.kill()
        self.sink.stop()


@pytest.fixture
def lab(tmp_path):
    lab = Lab(tmp_path)
    yield lab
    lab.close()


def populate(relay: PetrelServer) -> dict:
    """A queue with recipients in every state the engine leaves: delivered, failed, deferred, held."""
    ids = {}
    ids["partial"], _ = submit(relay, ["ok1@dest.test", "later1@dest.test"])
    ids["failed"], _ = submit(relay, ["bad1@dest.test", "later2@other.test"])
    ids["deferred"], _ = submit(relay, ["later3@dest.test"])
    ids["held"], _ = submit(relay, ["later4@dest.test"])
    for queue_id in ids.values():
        wait_until(lambda: attempted(relay, queue_id), what=f"a first attempt for {queue_id}", server=relay)
    # The engine's own bounce (for bad1) has been delivered: only these four are left.
    wait_until(lambda: relay.queue_ids() == set(ids.values()), what="only the four messages queued", server=relay)
    act(relay, "hold", ids["held"])
    return ids


# ---------------------------------------------------------------------------------------------------
# list, show, stats


@pytest.mark.parametrize("server_state", ["running", "stopped"])
def test_list_show_and_stats_describe_the_queue(lab, server_state):
    relay = lab.relay()
    ids = populate(relay)
    if server_state == "stopped":
        relay.stop()

    listed = cli_json(relay, "list")
    assert isinstance(listed, list)
    by_id = {message["queue_id"]: message for message in listed}
    assert set(ids.values()) <= set(by_id), listed
    for message in listed:
        assert MESSAGE_KEYS <= set(message), message
        for recipient in message["recipients"]:
            assert RECIPIENT_KEYS <= set(recipient), recipient
    assert recipient_states(by_id[ids["partial"]]) == {"ok1@dest.test": "delivered", "later1@dest.test": "deferred"}
    assert recipient_states(by_id[ids["failed"]]) == {"bad1@dest.test": "failed", "later2@other.test": "deferred"}
    assert by_id[ids["held"]]["held"] is True
    assert by_id[ids["deferred"]]["recipients"][0]["last_reply"].startswith("451 4.2.0")

    def listed_ids(*args: str) -> list:
        return [message["queue_id"] for message in cli_json(relay, "list", *args)]

    assert listed_ids("--state", "held") == [ids["held"]]
    # Delivered mail leaves the queue: there is no such state to list.
    assert relay.cli("queue", "list", "--state", "delivered").returncode == 64
    assert listed_ids("--state", "failed") == [ids["failed"]]
    assert set(listed_ids("--state", "deferred")) == set(ids.values())
    assert listed_ids("--domain", "OTHER.test") == [ids["failed"]]
    assert listed_ids("--recipient", "<Later3@dest.test>") == [ids["deferred"]]
    assert set(listed_ids("--sender", SENDER)) == set(ids.values())
    assert set(listed_ids("--sender", "@sender.test")) == set(ids.values())
    assert listed_ids("--older-than", "1h") == []
    assert set(listed_ids("--older-than", "0")) >= set(ids.values())

    # Pages: --limit, then --after the last id of the page.
    everything = listed_ids()
    first = listed_ids("--limit", "2")
    rest = listed_ids("--after", first[-1])
    assert first + rest == everything

    text = relay.cli("queue", "list", "--domain", "dest.test")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith("QUEUE ID")
    row = next(line for line in lines if line.startswith(ids["held"]))
    assert "held" in row and "<later4@dest.test> deferred" in row and "451 4.2.0" in row
    assert lines[-1].startswith("-- 4 messages")

    shown = cli_json(relay, "show", ids["partial"].lower())
    assert set(shown) == SHOW_KEYS, sorted(shown)
    assert shown["body"] is None
    assert shown["headers"].startswith("Received: ") and f"id {ids['partial']}" in shown["headers"]
    assert "Subject: queue admin test" in shown["headers"] and "Hello." not in shown["headers"]
    assert shown["headers"].endswith("\r\n\r\n")
    with_body = cli_json(relay, "show", ids["partial"], "--body")
    assert with_body["body"].startswith(with_body["headers"]) and with_body["body"].endswith("Hello.\r\n")
    text = relay.cli("queue", "show", ids["failed"])
    assert text.returncode == 0, text.stderr
    assert "<bad1@dest.test> failed" in text.stdout and "550 5.1.1 No such user" in text.stdout
    assert "headers:" in text.stdout and "Subject: queue admin test" in text.stdout

    stats = cli_json(relay, "stats")
    assert set(stats) == STATS_KEYS, stats
    assert stats["messages"] == {"total": 4, "queued": 0, "deferred": 3, "held": 1}, stats
    assert stats["recipients"]["deferred"] == 4 and stats["recipients"]["delivered"] == 1
    assert stats["recipients"]["failed"] == 1 and set(stats["recipients"]) == {
        "queued", "deferred", "delivered", "failed", "in_delivery"}
    assert stats["top_deferred_domains"][0] == {"domain": "dest.test", "recipients": 3}
    assert stats["top_deferred_domains"][1] == {"domain": "other.test", "recipients": 1}
    assert stats["top_deferred_errors"][0]["recipients"] == 4
    assert stats["top_deferred_errors"][0]["last_reply"].startswith("451 4.2.0 Mailbox busy")
    assert stats["oldest_message"]["queue_id"] == ids["partial"]
    assert set(stats["oldest_message"]) == {"queue_id", "arrived_at", "age_seconds"}
    assert stats["total_bytes"] == sum(message["size"] for message in listed)
    assert stats["pending_actions"] == 0
    text = relay.cli("queue", "stats")
    assert text.returncode == 0 and "dest.test" in text.stdout and "451 4.2.0" in text.stdout, text.stdout


def test_exit_codes(lab):
    relay = lab.relay()
    relay.stop()  # an empty queue, the server stopped
    assert relay.cli("queue", "show", "0000000000ZZZZ").returncode == 1
    result = relay.cli("queue", "hold", "0000000000ZZZZ")
    assert result.returncode == 1 and "0000000000ZZZZ: not found" in result.stderr
    results = act(relay, "delete", "0000000000ZZZZ", expect=1)
    assert results["0000000000ZZZZ"]["result"] == "not_found"
    for args in [
        ["hold"],                                   # no messages named
        ["hold", "0000000000ZZZZ", "--all"],        # ids and a filter
        ["retry", "--all", "--domain", "x.test"],   # --all and a filter
        ["bounce", "--state", "failed"],            # nothing to act on
        ["list", "--state", "delivered"],           # delivered mail leaves the queue
        ["list", "--state", "stuck"],
        ["list", "--older-than", "2 hours"],
        ["list", "--limit", "-1"],
        ["list", "--after", "not-an-id"],
        ["stats", "--bogus"],
    ]:
        assert relay.cli("queue", *args).returncode == 64, args
    assert cli_json(relay, "list") == []
    stats = cli_json(relay, "stats")
    assert stats["oldest_message"] is None and stats["top_deferred_domains"] == [] and stats["total_bytes"] == 0
    empty = relay.cli("queue", "retry", "--all")
    assert empty.returncode == 0 and "no message matches" in empty.stderr


def test_list_cuts_the_last_error_at_a_word(lab):
    relay = lab.relay()
    queue_id, _ = submit(relay, "full1@dest.test")
    wait_until(lambda: attempted(relay, queue_id), what="a first attempt", server=relay)
    reply = relay.queue_show(queue_id)["recipients"][0]["last_reply"]
    assert len(reply) > 60, reply
    result = relay.cli("queue", "list")
    assert result.returncode == 0, result.stderr
    [row] = [line for line in result.stdout.splitlines() if line.startswith(queue_id)]
    shown = row.split("  ")[-1]
    assert shown.endswith("…") and len(shown) <= 60, row
    kept = shown[:-1]
    assert reply.startswith(kept) and reply[len(kept)] == " ", (kept, reply)


def clean_environment() -> dict:
    return {key: value for key, value in os.environ.items() if key != "PETREL_CONFIG"}


@pytest.mark.skipif(os.path.exists("/etc/petrel/petrel.toml"), reason="this machine has a system configuration")
def test_the_queue_commands_never_create_a_queue(lab, tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    for args in [["list"], ["show", "0000000000ZZZZ"], ["stats"], ["hold", "--all"], ["delete", "0000000000ZZZZ"]]:
        result = run_petrel("queue", *args, cwd=folder, env=clean_environment())
        assert result.returncode == 1, (args, result)
        assert f"no queue at {folder}/petrel-data/queue.sqlite" in result.stderr, result.stderr
        assert "the embedded defaults (no --config, no $PETREL_CONFIG, no /etc/petrel/petrel.toml)" in result.stderr
        assert result.stdout == "", result.stdout
    assert list(folder.iterdir()) == [], "a read-only command made a queue"

    # $PETREL_CONFIG names the relay's configuration: the same queue as the server, from anywhere.
    relay = lab.relay()
    queue_id, _ = submit(relay, "later1@dest.test")
    listed = run_petrel("queue", "list", "--json", cwd=folder, env={**clean_environment(), "PETREL_CONFIG": str(relay.config_path)})
    assert listed.returncode == 0 and [m["queue_id"] for m in json.loads(listed.stdout)] == [queue_id], listed
    relay.stop()
    missing = folder / "other.toml"
    missing.write_text('[queue]\npath = "nowhere/queue.sqlite"\n')
    result = run_petrel("queue", "list", cwd="/", env={**clean_environment(), "PETREL_CONFIG": str(missing)})
    assert result.returncode == 1 and f"no queue at {folder}/nowhere/queue.sqlite" in result.stderr, result.stderr
    assert f"{missing} (from $PETREL_CONFIG)" in result.stderr, result.stderr
    assert not (folder / "nowhere").exists()


# ---------------------------------------------------------------------------------------------------
# Actions


@pytest.mark.parametrize("log_format", ["human", "json"])
def test_every_action_is_logged_once_by_the_server(lab, log_format):
    relay = PetrelServer(lab.folder / "audited", {
        "delivery": {"smarthost": f"127.0.0.1:{lab.port}", "retry_min": "1h", "retry_max": "1h"},
        "log": {"format": log_format},
    })
    lab.relays.append(relay)
    relay.start()
    first, _ = submit(relay, "later1@dest.test")
    second, _ = submit(relay, ["later2@dest.test", "later3@other.test"])
    for queue_id in (first, second):
        wait_until(lambda: attempted(relay, queue_id), what=f"a first attempt for {queue_id}", server=relay)

    assert relay.cli("queue", "hold", first, second, "--reason", "maintenance window").returncode == 0
    for queue_id in (first, second):
        wait_for_audit(relay, queue_id, f"held by operator {OPERATOR} (reason: maintenance window)")
    assert relay.cli("queue", "release", first, second).returncode == 0
    assert relay.cli("queue", "hold", first).returncode == 0
    assert relay.cli("queue", "hold", first).returncode == 0  # already held: nothing done, nothing logged
    assert relay.cli("queue", "bounce", first, "--reason", "Destination retired").returncode == 0
    assert relay.cli("queue", "delete", "--domain", "other.test", "--reason", "typo").returncode == 0
    assert relay.cli("queue", "delete", second).returncode == 0

    wait_for_audit(relay, first, f"bounced by operator {OPERATOR} (reason: Destination retired)")
    wait_for_audit(relay, second, f"removed by operator {OPERATOR}")
    time.sleep(2.0)  # two more looks at the queue: nothing is logged twice
    expected = {
        first: [f"held by operator {OPERATOR} (reason: maintenance window)", f"released by operator {OPERATOR}",
                f"held by operator {OPERATOR}", f"bounced by operator {OPERATOR} (reason: Destination retired)"],
        second: [f"held by operator {OPERATOR} (reason: maintenance window)", f"released by operator {OPERATOR}",
                 f"removed <later3@other.test> by operator {OPERATOR} (reason: typo)", f"removed by operator {OPERATOR}"],
    }
    for queue_id, actions in expected.items():
        lines = audit_lines(relay, queue_id)
        if log_format == "json":
            records = [json.loads(line) for line in lines]
            said = [record["msg"].split(": ", 1)[1] for record in records]
            assert all(record["queue_id"] == queue_id and record["operator"] == OPERATOR for record in records), records
            actions_done = ["hold", "release", "hold", "bounce"] if queue_id == first else ["hold", "release", "delete", "delete"]
            assert [record["action"] for record in records] == actions_done, records
            assert records[0]["reason"] == "maintenance window" and "reason" not in records[1], records
        else:
            said = [re.sub(r"^.*?\] " + queue_id + ": ", "", line) for line in lines]
        assert said == actions, lines


@pytest.mark.parametrize("server_state", ["running", "stopped"])
def test_actions_on_ids_and_filters(lab, server_state):
    relay = lab.relay()
    ids = populate(relay)
    if server_state == "stopped":
        relay.stop()

    text = relay.cli("queue", "hold", ids["deferred"])
    # Retries run every 1-2 s here, so the hold may meet an attempt under way, which it lets finish.
    said = text.stdout.strip()
    assert text.returncode == 0 and said in (
        f"{ids['deferred']}: held", f"{ids['deferred']}: held (the attempt under way for <later3@dest.test> goes on)"), text
    assert act(relay, "hold", ids["deferred"])[ids["deferred"]]["result"] == "already_held"
    assert {m["queue_id"] for m in cli_json(relay, "list", "--state", "held")} == {ids["held"], ids["deferred"]}

    retried = act(relay, "retry", "--all")
    assert retried[ids["held"]]["result"] == "on_hold" and retried[ids["deferred"]]["result"] == "on_hold"
    assert retried[ids["partial"]]["result"] in ("retried", "in_delivery"), retried

    released = act(relay, "release", "--state", "held")
    assert set(released) == {ids["held"], ids["deferred"]}
    assert all(result["result"] == "released" for result in released.values()), released
    assert released[ids["held"]]["recipients"] in (["later4@dest.test"], []), released  # [] when in delivery
    assert not any(m["held"] for m in cli_json(relay, "list"))

    deleted = act(relay, "delete", ids["partial"])[ids["partial"]]
    assert deleted["result"] in ("deleted", "delete_pending"), deleted
    bounced = act(relay, "bounce", "--domain", "other.test", "--reason", "Destination retired")[ids["failed"]]
    assert bounced["result"] in ("bounced", "bounce_pending"), bounced
    if server_state == "stopped":
        assert deleted == {"queue_id": ids["partial"], "result": "deleted", "recipients": ["later1@dest.test"],
                           "in_delivery": [], "notification": None, "removed": True}
        assert bounced["recipients"] == ["later2@other.test"] and bounced["removed"] is True
        assert bounced["notification"] is not None
        notification = cli_json(relay, "show", bounced["notification"], "--body")
        assert notification["sender"] == "" and [r["address"] for r in notification["recipients"]] == [SENDER]
        assert "Returned by the postmaster: Destination retired" in flat(notification["body"])
        relay.restart()

    # The server (on again) carries out what the actions left: the bounce reaches the sender, the
    # deleted and bounced messages are never delivered, the released ones are once they can be.
    wait_until(lambda: relay.queue_show(ids["partial"]) is None and relay.queue_show(ids["failed"]) is None,
               what="the deleted and bounced messages gone", server=relay)
    [report] = wait_until(lambda: bounce_reporting(lab.sink, ids["failed"]) and [
        r for r in bounces(lab.sink) if "Destination retired" in flat(r.as_string()) and "later2@other.test" in r.as_string()],
        what="the operator's bounce at the sender", server=relay)
    assert report["To"] == f"<{SENDER}>"
    status = report.get_payload()[1].get_payload()
    assert any((block["Status"] or "").strip() == "5.0.0" for block in status[1:]), report.as_string()
    lab.sink.rcpt_reply = None  # the destination accepts everything now
    for name in ["held", "deferred"]:
        relay.cli("queue", "retry", ids[name])  # it may be delivered already (exit 1: not found)
        wait_until(lambda: relay.queue_show(ids[name]) is None, what=f"{name} delivered", server=relay)
    delivered = [r for m in lab.sink.snapshot() if m.mail_from == SENDER for r in m.recipients]
    assert "later1@dest.test" not in delivered and "later2@other.test" not in delivered, delivered
    assert delivered.count("later3@dest.test") == 1 and delivered.count("later4@dest.test") == 1, delivered


def test_a_held_message_is_not_delivered_until_released(lab):
    relay = lab.relay()
    queue_id, subject = submit(relay, "later9@dest.test")
    wait_until(lambda: attempted(relay, queue_id), what="a first attempt", server=relay)
    act(relay, "hold", queue_id)
    lab.sink.rcpt_reply = None
    connections = lab.sink.connections
    time.sleep(3.5)  # beyond retry_max
    shown = relay.queue_show(queue_id)
    assert shown["held"] is True and shown["recipients"][0]["state"] == "deferred"
    assert originals(lab.sink, subject) == [] and lab.sink.connections == connections
    released = act(relay, "release", queue_id)[queue_id]
    assert released["result"] == "released" and released["recipients"] == ["later9@dest.test"]
    wait_until(lambda: originals(lab.sink, subject), what="the released message delivered", server=relay)
    wait_until(lambda: relay.queue_show(queue_id) is None, what="the queue empty", server=relay)


# ---------------------------------------------------------------------------------------------------
# Concurrency: acting on a message while it is being delivered


@pytest.mark.parametrize("outcome", ["delivered", "deferred"])
@pytest.mark.parametrize("action", ["hold", "delete", "bounce"])
def test_acting_on_a_message_in_delivery_ends_consistent(lab, action, outcome):
    relay = lab.relay()
    hold_reply = threading.Event()
    lab.sink.hold_data_reply = hold_reply
    queue_id, subject = submit(relay, "user@dest.test")
    lab.sink.wait_for(lambda: lab.sink.held >= 1, WAIT, "the text in the sink, its reply held")

    args = ["--reason", "Stopped by the operator"] if action == "bounce" else []
    result = act(relay, action, queue_id, *args)[queue_id]
    assert result["in_delivery"] == ["user@dest.test"], result
    assert result["result"] == {"hold": "held", "delete": "delete_pending", "bounce": "bounce_pending"}[action]
    assert result["recipients"] == [] and result["removed"] is False
    shown = relay.queue_show(queue_id)
    [recipient] = shown["recipients"]
    assert recipient["in_delivery"] is True
    assert recipient["pending_action"] == (None if action == "hold" else action)
    assert shown["held"] is (action == "hold")
    assert cli_json(relay, "stats")["recipients"]["in_delivery"] == 1
    # Retrying it meanwhile changes nothing: it is being tried.
    if action != "hold":
        assert act(relay, "retry", queue_id)[queue_id]["result"] == "in_delivery"

    # The operator's line is logged once the action is done: a hold at once, a delete or bounce when the
    # attempt it waited for has ended (saying so when that attempt settled the recipient).
    verb = {"hold": "held", "delete": "removed", "bounce": "bounced"}[action]
    reason = " (reason: Stopped by the operator)" if action == "bounce" else ""
    if action == "hold":
        wait_for_audit(relay, queue_id, f"held by operator {OPERATOR}")
    else:
        time.sleep(1.5)
        assert audit_lines(relay, queue_id) == [], "logged before the attempt it waits for has ended"

    if outcome == "deferred":
        lab.sink.data_reply = lambda message: "451 4.3.0 Try again later"
    hold_reply.set()

    if outcome == "delivered":
        # The attempt went on and delivered: delivered once, and neither deleted nor bounced after that.
        wait_until(lambda: relay.queue_show(queue_id) is None, what="the message gone after its delivery", server=relay)
        assert len(originals(lab.sink, subject)) == 1
        if action != "hold":
            wait_for_audit(relay, queue_id, f"{verb} nothing by operator {OPERATOR}{reason}; <user@dest.test> settled by the attempt under way")
        time.sleep(1.0)
        assert bounce_reporting(lab.sink, queue_id) == [], "a delivered recipient must not be bounced"
        assert len(originals(lab.sink, subject)) == 1
        assert len(audit_lines(relay, queue_id)) == 1, audit_lines(relay, queue_id)
        return

    lab.sink.wait_for(lambda: len(lab.sink.refused) >= 1, WAIT, "the text refused with 451")
    lab.sink.data_reply = None  # the destination would accept it now: it must still not be sent
    if action == "hold":
        wait_until(lambda: relay.queue_show(queue_id)["recipients"][0]["state"] == "deferred",
                   what="the deferral recorded", server=relay)
        time.sleep(3.0)  # beyond retry_max: a held message is not retried
        shown = relay.queue_show(queue_id)
        assert shown["held"] is True and shown["recipients"][0]["attempts"] == 1, shown
        assert originals(lab.sink, subject) == []
        act(relay, "release", queue_id)
        wait_until(lambda: originals(lab.sink, subject), what="delivery after release", server=relay)
        wait_until(lambda: relay.queue_show(queue_id) is None, what="the queue empty", server=relay)
        assert len(originals(lab.sink, subject)) == 1
    elif action == "delete":
        wait_until(lambda: relay.queue_show(queue_id) is None, what="the message deleted", server=relay)
        time.sleep(3.0)
        assert originals(lab.sink, subject) == [] and bounce_reporting(lab.sink, queue_id) == []
    else:
        [report] = wait_until(lambda: bounce_reporting(lab.sink, queue_id), what="the bounce", server=relay)
        assert report.recipients == [SENDER]
        assert "Stopped by the operator" in flat(report.data) and "Status: 5.0.0" in flat(report.data)
        wait_until(lambda: relay.queue_show(queue_id) is None, what="the bounced message gone", server=relay)
        time.sleep(2.0)
        assert originals(lab.sink, subject) == [] and len(bounce_reporting(lab.sink, queue_id)) == 1
    assert cli_json(relay, "stats")["pending_actions"] == 0
    if action != "hold":
        wait_for_audit(relay, queue_id, f"{verb} by operator {OPERATOR}{reason}")
        assert len(audit_lines(relay, queue_id)) == 1, audit_lines(relay, queue_id)


@pytest.mark.parametrize("action", ["delete", "bounce"])
def test_an_action_waiting_for_a_crashed_delivery_applies_at_restart(lab, action):
    relay = lab.relay()
    lab.sink.hold_data_reply = threading.Event()
    queue_id, subject = submit(relay, "user@dest.test")
    lab.sink.wait_for(lambda: lab.sink.held >= 1, WAIT, "the text in the sink, its reply held")
    assert act(relay, action, queue_id)[queue_id]["result"] == f"{action}_pending"

    relay.kill()
    # Stopped: the recipient is still leased to the dead process, the action waits for it.
    shown = relay.queue_show(queue_id)
    assert shown["recipients"][0]["pending_action"] == action and shown["recipients"][0]["in_delivery"] is True
    assert cli_json(relay, "stats")["pending_actions"] == 1
    lab.sink.hold_data_reply.set()  # the held connection is gone with the process

    relay.restart()  # gives the dead run's leases back: the action applies then
    wait_until(lambda: relay.queue_show(queue_id) is None, what="the action applied at restart", server=relay)
    if action == "bounce":
        wait_until(lambda: bounce_reporting(lab.sink, queue_id), what="the bounce", server=relay)
    time.sleep(2.0)
    assert originals(lab.sink, subject) == [], "the crashed attempt never completed; nothing else may send it"
    assert len(bounce_reporting(lab.sink, queue_id)) == (1 if action == "bounce" else 0)
