"""The crash-and-fault harness in its short form (issue 6): kill -9 under load, a full disk, slow and hostile
clients, failing next hops. The scenarios live in `fault_harness.py`; the full runs (50 kills, 1,000 idle
connections, both filesystem kinds) are `python3 bench/crash_harness.py --rounds 50`, the same short form
`python3 bench/crash_harness.py --quick`.

Each test prints its table of figures (shown with `pytest -s`, and in the failure message).
"""

from __future__ import annotations

import pytest

import fault_harness as harness


def check(result: harness.Result) -> None:
    print()
    print(result.table())
    if result.skipped is not None:
        pytest.skip(result.skipped)
    assert result.ok, "\n" + result.table()


def test_kill_9_under_load_loses_no_acknowledged_message(tmp_path):
    """5 rounds of load from 6 clients, each ended by a SIGKILL at a different moment (mid-DATA, after the
    dot, after a 250, during a delivery, at random) and a restart on the same queue; then every message
    that got a 250 must have reached the sink, intact, and duplicates must come from kills."""
    check(harness.run_crash(tmp_path, rounds=5, clients=6, warmup=(0.3, 0.9), drain_timeout=30.0))


def test_full_disk_gets_452_and_acceptance_resumes(tmp_path):
    """Queue on an 8 MB tmpfs (else a 16 MB ext4 image), filled: 452 4.3.1 at the end of DATA, the session
    and the server go on, nothing acknowledged is lost, and mail is accepted again once space is freed.
    Skips (with the reason) where no filesystem can be mounted."""
    check(harness.run_disk_full(tmp_path, spooled=False, full_hold=2.0))


def test_full_disk_gets_452_for_a_spooled_message_too(tmp_path):
    """The same with a message over the 256 KB inline limit, which goes to a spool file during DATA: the
    failed spool write is reported as 452 4.3.1 at the end of DATA, and the session goes on."""
    check(harness.run_disk_full(tmp_path, spooled=True, full_hold=0.5))


def test_slow_and_hostile_clients_do_not_starve_a_good_one(tmp_path):
    """200 idle connections, tricklers, garbage, 10 MB lines, stalled DATA; a well-behaved client's median
    session stays under 200 ms, and every hostile client ends on its limit."""
    check(harness.run_hostile_clients(tmp_path, idle=200, garbage=5, measure_seconds=4.0, command_timeout=8,
                                      per_client=20))


def test_destination_faults_end_in_a_retry_and_a_delivery(tmp_path):
    """Next hops that hang after the greeting, reset mid-DATA, or answer 421 at connect: each message is
    deferred, retried, and delivered exactly once when the fault goes; no bounce, nothing stuck."""
    check(harness.run_destination_faults(tmp_path))
