"""The crash-and-fault harness (issue 6), as a library: four scenarios that drive the real `petrel serve`
and return a `Result` (a table of figures, failures and notes). `bench/crash_harness.py` runs them in
full from the command line; `test_faults.py` runs their short forms under pytest.

- `run_crash`: many rounds of load from concurrent clients with uniquely numbered messages, a SIGKILL at
  a chosen moment (mid-DATA, right after the final dot, right after a 250, while a delivery is in flight
  at the sink, or at random), a restart on the same queue; then a drain and the proof: every message
  that got a `250` reached the sink (zero lost), intact; duplicates counted and attributed to kills.
- `run_disk_full`: the queue on a small filesystem (size-limited tmpfs, else a loop-mounted ext4 image),
  filled with a ballast file: `452 4.3.1` at the end of DATA, the server stays up, nothing acknowledged
  is lost, and acceptance resumes once the ballast is deleted.
- `run_hostile_clients`: hundreds of idle connections, byte-a-second tricklers, garbage senders, 10 MB
  lines and clients that stall mid-DATA, while a well-behaved client's latency is measured and the
  server's RSS watched; the hostile ones must end on their limits.
- `run_destination_faults`: next hops that hang after the greeting, reset mid-DATA, or answer `421` at
  connect: each ends in a retry, and once the fault is gone the message is delivered (never lost, never
  stuck, never bounced).

Every wait is bounded, every server is killed and every sink stopped in `finally`, every mount undone.
Generations: the crash scenario notes when each relay process (generation) was spawned and killed, and
the sink when it accepted each connection; so every copy the sink receives is attributed to the process
that delivered it (a connection accepted after generation N was spawned and before N+1 was cannot come
from an earlier, dead, process). The hostname stays the same on purpose: the relay's delivery leases are
owned by `hostname:...`, and a restart releases only the leases of its own hostname.
"""

from __future__ import annotations

import errno
import os
import random
import re
import selectors
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import conftest
import smtp_sink
from conftest import (
    ConnectionClosed, PetrelServer, Reply, ServerStartError, SMTPConversation, free_port, loopback_alias_usable,
    queue_id_of,
)
from smtp_sink import SMTPSink

Log = Callable[[str], None]

FAST_DELIVERY = {"retry_min": "1s", "retry_max": "2s", "connect_timeout": "2s", "command_timeout": "3s",
                 "data_timeout": "5s"}


def _quiet(_: str) -> None:
    pass


class Client(SMTPConversation):
    """The conftest's raw client with TCP_NODELAY: the text and the final dot go out in separate writes,
    and with Nagle on the dot would wait for the server's delayed ACK (~40 ms), which is not the relay's
    latency."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# ---------------------------------------------------------------------------------------------------
# Results


@dataclass
class Result:
    """What one scenario found: figures for the table, failures (any makes it fail), notes."""
    name: str
    rows: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    skipped: Optional[str] = None
    work_dir: Optional[Path] = None

    def add(self, label: str, value) -> None:
        self.rows.append((label, value))

    def fail(self, text: str) -> None:
        self.failures.append(text)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def status(self) -> str:
        if self.skipped is not None:
            return "SKIPPED"
        return "PASS" if self.ok else "FAIL"

    def table(self) -> str:
        width = max([len(label) for label, _ in self.rows] + [10])
        lines = [f"== {self.name}: {self.status}"]
        if self.skipped is not None:
            lines.append(f"   skipped: {self.skipped}")
        for label, value in self.rows:
            lines.append(f"   {label.ljust(width)}  {value}")
        for text in self.failures:
            lines.append(f"   FAIL: {text}")
        for text in self.notes:
            lines.append(f"   note: {text}")
        return "\n".join(lines)


def percentiles(values: list, points=(50, 90, 99)) -> dict:
    if not values:
        return {p: float("nan") for p in points}
    ordered = sorted(values)
    result = {}
    for p in points:
        index = min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered) + 0.5)) - 1))
        result[p] = ordered[index]
    return result


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency_summary(values: list) -> str:
    if not values:
        return "n/a"
    p = percentiles(values, (50, 90, 99))
    return (f"p50 {ms(p[50])}, p90 {ms(p[90])}, p99 {ms(p[99])}, max {ms(max(values))} "
            f"(n={len(values)})")


def rss_kb(pid: int) -> Optional[int]:
    """VmRSS of a process in kB (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


def hwm_kb(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, ValueError):
        return None
    return None


class RSSSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 0.1):
        self.pid = pid
        self.interval = interval
        self.samples: list = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> "RSSSampler":
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_kb(self.pid)
            if value is not None:
                self.samples.append((time.monotonic(), value))
            self._stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak(self, since: float = 0.0, until: float = float("inf")) -> Optional[int]:
        values = [kb for at, kb in self.samples if since <= at <= until]
        return max(values) if values else None


def mb(kb: Optional[int]) -> str:
    return "n/a" if kb is None else f"{kb / 1024:.1f} MB"


def log_tail(server: PetrelServer, lines: int = 30) -> str:
    return "\n".join(server.log_text().splitlines()[-lines:])


def stop_server(server: Optional[PetrelServer]) -> Optional[int]:
    """SIGTERM (then SIGKILL after the conftest's bound). Never raises."""
    if server is None:
        return None
    try:
        return server.stop()
    except Exception:  # noqa: BLE001 - teardown must reach every process
        try:
            server.kill()
        except Exception:  # noqa: BLE001
            pass
        return None


def start_with_retries(server: PetrelServer, keep_port: bool, attempts: int = 3) -> float:
    """Starts (or restarts) the server; returns how long it took to listen. Restarts keep the port
    when they can; a port taken meanwhile (an outbound connection's local port, say) gets a new one."""
    last: Optional[Exception] = None
    for attempt in range(attempts):
        started = time.monotonic()
        try:
            server.start(keep_port=keep_port and attempt == 0)
            return time.monotonic() - started
        except ServerStartError as error:
            last = error
            server.kill()
        except FileNotFoundError as error:
            # A concurrent `swift build` relinks the binary: it is back in a moment.
            last = error
            server.process = None
            server._close_log()
            wait_until(lambda: os.access(conftest.PETREL_BIN, os.X_OK), 300.0, interval=0.5)
    raise last


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.05):
    """Polls until `predicate()` is truthy (returns its value) or the time is up (returns the last)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------------
# A sink that knows which transactions are in flight and when it answered


class _TrackingConnection(smtp_sink._Connection):
    """The stock sink connection, reporting when a transaction (MAIL .. end of DATA) is open."""

    def mail(self, argument: str) -> None:
        super().mail(argument)
        if self.mail_from is not None:
            self.sink._set_in_transaction(self.number, True)

    def data(self) -> None:
        try:
            super().data()
        finally:
            self.sink._set_in_transaction(self.number, False)

    def run(self) -> None:
        try:
            super().run()
        finally:
            self.sink._set_in_transaction(self.number, False)


class TrackingSink(SMTPSink):
    """`SMTPSink` plus: the set of connections with a transaction open, a random hold of the reply to
    the final dot (`hold_probability`, `hold_range` seconds), the time of each reply (`received_at` on
    the message), and `take_messages()` to hand the recorded messages over and forget them."""

    def __init__(self, host: str, port: int, name: str = "sink.test", seed: int = 0):
        super().__init__(host, port, name=name)
        self.in_transaction: set = set()
        self.accepted_at: dict = {}     # connection number -> when it was accepted
        self.holding = 0
        self.hold_probability = 0.0
        self.hold_range = (0.05, 0.5)
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.data_reply = self._data_reply

    def _set_in_transaction(self, number: int, active: bool) -> None:
        with self._condition:
            if active:
                self.in_transaction.add(number)
            else:
                self.in_transaction.discard(number)

    def transactions_in_flight(self) -> int:
        with self._condition:
            return len(self.in_transaction)

    def _data_reply(self, message) -> None:
        with self._rng_lock:
            hold = self._rng.uniform(*self.hold_range) if self._rng.random() < self.hold_probability else 0.0
        if hold > 0:
            with self._condition:
                self.holding += 1
            try:
                self._stopping.wait(hold)
            finally:
                with self._condition:
                    self.holding -= 1
        message.received_at = time.monotonic()
        return None

    def take_messages(self) -> list:
        with self._condition:
            taken, self.messages = self.messages, []
        return taken

    def _serve(self, sock, peer, number) -> None:
        with self._condition:
            self.accepted_at[number] = time.monotonic()
        connection = _TrackingConnection(self, sock, peer, number)
        try:
            connection.run()
        except (OSError, smtp_sink._Closed):
            pass
        finally:
            with self._condition:
                self._sockets.discard(sock)
                self.in_transaction.discard(number)
                self._condition.notify_all()
            try:
                sock.close()
            except OSError:
                pass


def start_sink(seed: int = 0, name: str = "sink.test", tracking: bool = True, host: str = "127.0.0.1") -> SMTPSink:
    """A sink on a free port (retried if the port is taken between probe and bind)."""
    last: Optional[OSError] = None
    for _ in range(5):
        port = free_port(host)
        sink = TrackingSink(host, port, name=name, seed=seed) if tracking else SMTPSink(host, port, name=name)
        try:
            return sink.start()
        except OSError as error:
            last = error
    raise last


# ---------------------------------------------------------------------------------------------------
# Numbered messages

SUBJECT = re.compile(rb"^Subject: crash-harness #(\d+)\r?$", re.M)
FILLER = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 2


def numbered_text(number: int, size: int) -> bytes:
    """A message text of about `size` octets whose Subject and body carry its number, and whose every body
    line is tied to that number and its position (so truncation or mixing shows). No line starts with a
    dot, so no dot-stuffing is needed."""
    head = (f"From: Crash Harness <harness@crash.test>\r\nTo: <rcpt{number}@dest.test>\r\n"
            f"Subject: crash-harness #{number}\r\nDate: Mon, 02 Jan 2023 03:04:05 +0000\r\n"
            f"Message-ID: <{number}.crash@harness.test>\r\n\r\nharness-number: {number}\r\n").encode()
    lines = [head]
    total = len(head)
    index = 0
    while total < size:
        offset = index % 60
        line = b"%08d.%06d " % (number, index) + FILLER[offset:offset + 60] + b"\r\n"
        lines.append(line)
        total += len(line)
        index += 1
    return b"".join(lines)


def tagged_text(tag: str, number: int, size: int) -> bytes:
    """`numbered_text` with the Subject `TAG #NUMBER` (the tag without spaces)."""
    return numbered_text(number, size).replace(b"Subject: crash-harness #", f"Subject: {tag} #".encode(), 1)


def message_size(rng: random.Random, spool_share: float) -> int:
    draw = rng.random()
    if draw < spool_share:
        return rng.randint(300_000, 400_000)        # over the 256 KB inline limit: a spool file
    if draw < spool_share + 0.15:
        return rng.randint(20_000, 60_000)
    return rng.randint(400, 4_000)


# ---------------------------------------------------------------------------------------------------
# 1. Crash


@dataclass
class Sent:
    number: int
    size: int
    state: str = "envelope"   # envelope -> data -> dot -> acked | refused | unknown; or aborted
    queue_id: Optional[str] = None
    reply: str = ""
    generation: int = 0
    latency: Optional[float] = None


@dataclass
class Kill:
    generation: int
    mode: str
    triggered: bool
    at: float
    clients_in_data: int
    sink_transactions: int
    sink_holding: int


@dataclass
class Copy:
    generation: Optional[int]
    at: float
    intact: bool


class CrashLoad:
    """Client threads that send numbered messages to whatever relay generation is up, as fast as they can,
    and record for every number what the relay answered."""

    def __init__(self, server: PetrelServer, clients: int, seed: int, spool_share: float):
        self.server = server
        self.clients = clients
        self.seed = seed
        self.spool_share = spool_share
        self.lock = threading.Lock()
        self.records: dict = {}
        self.next_number = 1
        self.generation = 1
        self.in_data = 0
        self.dot_sent = threading.Event()
        self.acked = threading.Event()
        self.stop = threading.Event()
        self.errors: list = []
        self.threads = [threading.Thread(target=self._client, args=(index,), name=f"crash-client-{index}", daemon=True)
                        for index in range(clients)]

    def start(self) -> "CrashLoad":
        for thread in self.threads:
            thread.start()
        return self

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=20)

    def _new(self, size: int) -> Sent:
        with self.lock:
            sent = Sent(self.next_number, size)
            self.records[sent.number] = sent
            self.next_number += 1
            return sent

    def _client(self, index: int) -> None:
        rng = random.Random(self.seed * 1000 + index)
        while not self.stop.is_set():
            try:
                smtp = Client((self.server.listen_host, self.server.port), timeout=10.0)
            except (OSError, ConnectionClosed, AssertionError):
                self.stop.wait(rng.uniform(0.01, 0.04))
                continue
            current: Optional[Sent] = None
            try:
                if smtp.greeting.code != 220:
                    continue
                if smtp.command("EHLO crash-client.test").code != 250:
                    continue
                for _ in range(rng.randint(1, 3)):
                    if self.stop.is_set():
                        break
                    current = self._new(message_size(rng, self.spool_share))
                    if smtp.command("MAIL FROM:<harness@crash.test>").code != 250 or \
                            smtp.command(f"RCPT TO:<rcpt{current.number}@dest.test>").code != 250 or \
                            smtp.command("DATA").code != 354:
                        current.state = "refused"
                        current = None
                        break
                    current.state = "data"
                    self._send_text(smtp, numbered_text(current.number, current.size), rng)
                    current.state = "dot"
                    sent_at = time.monotonic()
                    smtp.send(b".\r\n")
                    self.dot_sent.set()
                    reply = smtp.read_reply()
                    current.latency = time.monotonic() - sent_at
                    current.reply = str(reply)
                    if reply.code == 250:
                        current.queue_id = queue_id_of(reply)
                        current.generation = self.generation
                        current.state = "acked"
                        self.acked.set()
                    else:
                        current.state = "refused"
                    current = None
                else:
                    try:
                        smtp.command("QUIT")
                    except (OSError, ConnectionClosed):
                        pass
            except (OSError, ConnectionClosed) as error:
                if current is not None:
                    # Cut off: before the final dot nothing can have been queued; after it, maybe.
                    current.state = "unknown" if current.state == "dot" else "aborted"
                    current.reply = f"({type(error).__name__})"
            except AssertionError as error:  # a malformed reply: worth reporting
                self.errors.append(f"client {index}: {error}")
                if current is not None:
                    current.state = "unknown"
            finally:
                if current is not None and current.state in ("data", "envelope"):
                    current.state = "aborted"
                smtp.close()

    def _send_text(self, smtp: SMTPConversation, text: bytes, rng: random.Random) -> None:
        """Sends the text in pieces with a little jitter between them, so that kills land mid-DATA."""
        if len(text) > 100_000:
            pieces = [text[i:i + 65536] for i in range(0, len(text), 65536)]
        else:
            cuts = sorted(rng.sample(range(1, len(text)), k=min(2, len(text) - 1)))
            pieces = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        with self.lock:
            self.in_data += 1
        try:
            for position, piece in enumerate(pieces):
                smtp.send(piece)
                if position + 1 < len(pieces):
                    time.sleep(rng.uniform(0.0, 0.008))
        finally:
            with self.lock:
                self.in_data -= 1


KILL_MODES = ("mid_data", "after_dot", "after_250", "in_delivery", "random")


def _wait_for_trigger(mode: str, load: CrashLoad, sink: TrackingSink, rng: random.Random, timeout: float) -> bool:
    """Waits for the moment `mode` names (at most `timeout` s) plus a little jitter; False when it never came."""
    deadline = time.monotonic() + timeout
    if mode == "random":
        time.sleep(rng.uniform(0.0, 0.8))
        return True
    if mode in ("after_dot", "after_250"):
        event = load.dot_sent if mode == "after_dot" else load.acked
        event.clear()
        if not event.wait(timeout):
            return False
        time.sleep(rng.uniform(0.0, 0.002))
        return True
    while time.monotonic() < deadline:
        if mode == "mid_data" and load.in_data > 0:
            time.sleep(rng.uniform(0.0, 0.004))
            return True
        if mode == "in_delivery" and sink.transactions_in_flight() > 0:
            time.sleep(rng.uniform(0.0, 0.03))
            return True
        time.sleep(0.001)
    return False


def run_crash(work_dir: Path, rounds: int = 5, clients: int = 6, seed: Optional[int] = None,
              warmup: tuple = (0.3, 1.2), drain_timeout: float = 60.0, hold_probability: float = 0.25,
              spool_share: float = 0.02, log: Log = _quiet) -> Result:
    result = Result(f"crash: {rounds} x kill -9 under load")
    result.work_dir = work_dir
    seed = random.randrange(1 << 30) if seed is None else seed
    rng = random.Random(seed)
    result.add("seed", seed)
    sink = start_sink(seed=seed, name="crash-sink.test")
    sink.hold_probability = hold_probability
    sink.hold_range = (0.05, 0.8)
    server = PetrelServer(work_dir / "relay", {
        "inbound": {"max_connections_per_client": 200},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", **FAST_DELIVERY},
    })
    kills: list = []
    restarts: list = []
    copies: dict = defaultdict(list)
    bad_copies: list = []
    bounces: list = []
    load: Optional[CrashLoad] = None
    unexpected_exits: list = []
    generation_started: list = []   # monotonic time just before each generation was spawned

    def generation_at(moment: float) -> int:
        """The relay generation alive at `moment` (1-based): the last one spawned before it."""
        return max(1, sum(1 for started in generation_started if started <= moment))

    def collect() -> None:
        for message in sink.take_messages():
            if message.mail_from == "":
                bounces.append(message)
                continue
            match = SUBJECT.search(message.data)
            if not match:
                bad_copies.append(("no subject", message.data[:200]))
                continue
            number = int(match.group(1))
            record = load.records.get(number)
            intact = record is not None and message.data.endswith(numbered_text(number, record.size))
            if not intact:
                bad_copies.append((number, message.data[:300]))
            accepted = sink.accepted_at.get(message.connection)
            copies[number].append(Copy(generation_at(accepted) if accepted is not None else None,
                                       getattr(message, "received_at", time.monotonic()), intact))

    try:
        generation_started.append(time.monotonic())
        restarts.append(start_with_retries(server, keep_port=False))
        load = CrashLoad(server, clients, seed, spool_share).start()
        for round_number in range(1, rounds + 1):
            generation = load.generation
            time.sleep(rng.uniform(*warmup))
            if server.process.poll() is not None:
                unexpected_exits.append((generation, server.process.returncode))
                result.fail(f"generation {generation} exited by itself ({server.process.returncode}) before "
                            f"its kill:\n{log_tail(server)}")
            mode = KILL_MODES[(round_number - 1) % len(KILL_MODES)]
            triggered = _wait_for_trigger(mode, load, sink, rng, timeout=3.0)
            kill = Kill(generation, mode, triggered, time.monotonic(), load.in_data,
                        sink.transactions_in_flight(), sink.holding)
            server.kill()
            kills.append(kill)
            collect()
            with load.lock:
                acked = sum(1 for r in load.records.values() if r.state == "acked")
                total = len(load.records)
            log(f"round {round_number}/{rounds}: kill -9 ({mode}{'' if triggered else ', not triggered'}) "
                f"gen {generation}: {total} sent, {acked} acked, in DATA {kill.clients_in_data}, "
                f"sink transactions {kill.sink_transactions} (held {kill.sink_holding})")
            time.sleep(rng.uniform(0.0, 0.3))
            if round_number == rounds:
                load.finish()  # the last kill ends the load; the final generation only drains
            load.generation = generation + 1
            generation_started.append(time.monotonic())
            restarts.append(start_with_retries(server, keep_port=True))
        load.finish()
        records = load.records
        acked = {n for n, r in records.items() if r.state == "acked"}
        sink.hold_probability = 0.0
        log(f"draining: {len(acked)} acknowledged messages must reach the sink")
        drain_started = time.monotonic()

        def drained() -> bool:
            collect()
            return acked <= copies.keys()
        wait_until(drained, drain_timeout, interval=0.25)
        wait_until(lambda: not server.queue_list(), max(5.0, drain_timeout - (time.monotonic() - drain_started)),
                   interval=0.5)
        remaining = server.queue_list()
        drain_time = time.monotonic() - drain_started
        time.sleep(0.5)
        collect()
        exit_code = stop_server(server)
        if exit_code != 0:
            result.fail(f"the final generation did not stop cleanly on SIGTERM (exit {exit_code})")

        # ---- the verdict
        states = Counter(r.state for r in records.values())
        lost = sorted(acked - copies.keys())
        delivered_unacked = sorted(n for n in copies if n not in acked)
        duplicates = {n: c for n, c in copies.items() if len(c) > 1}
        extra = sum(len(c) - 1 for c in duplicates.values())
        kill_by_generation = {k.generation: k for k in kills}
        in_flight, unexplained, windows = 0, [], []
        for number, found in sorted(duplicates.items()):
            found.sort(key=lambda copy: copy.at)
            for first, second in zip(found, found[1:]):
                kill = kill_by_generation.get(first.generation)
                if first.generation is None or first.generation == second.generation or kill is None:
                    unexplained.append((number, first.generation, second.generation, "same process"))
                elif kill.at - first.at > 5.0:
                    unexplained.append((number, first.generation, second.generation,
                                        f"first copy {kill.at - first.at:.1f}s before the kill"))
                else:
                    in_flight += 1
                    windows.append(max(0.0, kill.at - first.at))
        during_delivery = sum(1 for k in kills if k.sink_transactions > 0)
        mode_counts = Counter(k.mode for k in kills)
        triggered = Counter(k.mode for k in kills if k.triggered)
        log_text = server.log_text()
        released = sum(int(m) for m in re.findall(r"released (\d+) recipient leases", log_text))
        fatal = [line for line in log_text.splitlines() if re.search(r"Fatal error|fatal:|panic|Segmentation", line)]
        spool_left = sorted(os.listdir(server.spool_dir)) if server.spool_dir.is_dir() else []
        latencies = [r.latency for r in records.values() if r.state == "acked" and r.latency is not None]

        result.add("kills (SIGKILL)", len(kills))
        result.add("kill moments", ", ".join(f"{m} {mode_counts[m]} ({triggered[m]} hit)" for m in KILL_MODES if mode_counts[m]))
        result.add("kills with a delivery in flight", f"{during_delivery} (sink mid-transaction at the kill)")
        result.add("kills mid-DATA (a client sending text)", sum(1 for k in kills if k.clients_in_data > 0))
        result.add("messages attempted", len(records))
        result.add("acknowledged (250)", len(acked))
        result.add("refused / cut before the dot", f"{states['refused']} / {states['aborted']}")
        result.add("cut after the dot, no reply", f"{states['unknown']} (of which delivered anyway: "
                   f"{sum(1 for n in delivered_unacked if records[n].state == 'unknown')})")
        result.add("LOST (acked, never delivered)", len(lost))
        result.add("duplicates (extra copies)", f"{extra} over {len(duplicates)} messages; {in_flight} explained by a "
                   f"kill with the first copy in flight, {len(unexplained)} unexplained")
        result.add("  sink's 250 of the first copy -> kill", latency_summary(windows))
        result.add("corrupt copies", len(bad_copies))
        result.add("bounces (null sender) at the sink", len(bounces))
        result.add("left in the queue after the drain", len(remaining))
        result.add("spool files left after the drain", len(spool_left))
        result.add("drain time", f"{drain_time:.1f} s")
        result.add("leases released at restarts", released)
        result.add("restart to listening", latency_summary(restarts[1:]))
        result.add("250 after the dot (load clients)", latency_summary(latencies))
        if lost:
            details = [f"#{n} {records[n].queue_id} (acked by gen {records[n].generation})" for n in lost[:20]]
            result.fail(f"{len(lost)} acknowledged messages never reached the sink: {', '.join(details)}")
        if unexplained:
            result.fail(f"{len(unexplained)} duplicate deliveries not explained by a kill: "
                        + ", ".join(f"#{n} gen {a}->{b} ({why})" for n, a, b, why in unexplained[:20]))
        if bad_copies:
            result.fail(f"{len(bad_copies)} copies at the sink are not the text that was sent: {bad_copies[:3]!r}")
        if bounces:
            result.fail(f"{len(bounces)} bounces reached the sink (nothing should have failed permanently)")
        if remaining:
            result.fail(f"{len(remaining)} messages still queued after the drain: "
                        f"{[m.get('queue_id') for m in remaining[:10]]}")
        if spool_left:
            result.note(f"spool files left behind: {spool_left[:10]}")
        if fatal:
            result.fail(f"fatal lines in the log: {fatal[:5]}")
        if load.errors:
            result.fail(f"client protocol errors: {load.errors[:5]}")
        if not acked:
            result.fail("no message was acknowledged at all")
        if unexpected_exits:
            result.note(f"unexpected exits: {unexpected_exits}")
    finally:
        if load is not None:
            load.finish()
        server.kill()
        sink.stop()
    return result


# ---------------------------------------------------------------------------------------------------
# 2. Disk full


class SmallFilesystem:
    """A small filesystem mounted at `<base>/mnt`: a size-limited tmpfs or a loop-mounted ext4 image.
    `mount()` returns None when it worked, else why not. `unmount()` undoes everything it did."""

    def __init__(self, base: Path, kind: str):
        self.base = Path(base)
        self.kind = kind
        self.path = self.base / "mnt"
        self.image = self.base / "fs.img"
        self.mounted = False

    def _run(self, *command: str) -> subprocess.CompletedProcess:
        return subprocess.run(list(command), capture_output=True, text=True, timeout=30, check=False)

    def mount(self) -> Optional[str]:
        self.path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return "not root: mounting a filesystem needs root"
        if self.kind == "tmpfs":
            done = self._run("mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(self.path))
        elif self.kind == "ext4":
            if shutil.which("mkfs.ext4") is None:
                return "mkfs.ext4 is not installed"
            with open(self.image, "wb") as image:
                image.truncate(16 * 1024 * 1024)
            made = self._run("mkfs.ext4", "-q", "-F", "-m", "0", str(self.image))
            if made.returncode != 0:
                return f"mkfs.ext4 failed: {made.stderr.strip()}"
            done = self._run("mount", "-o", "loop", str(self.image), str(self.path))
        else:
            raise ValueError(self.kind)
        if done.returncode != 0:
            return f"mount ({self.kind}) failed: {done.stderr.strip() or done.returncode}"
        self.mounted = True
        return None

    def unmount(self) -> None:
        if self.mounted:
            if self._run("umount", str(self.path)).returncode != 0:
                time.sleep(0.5)
                if self._run("umount", str(self.path)).returncode != 0:
                    self._run("umount", "-l", str(self.path))
            self.mounted = False
        try:
            self.image.unlink()
        except FileNotFoundError:
            pass

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize


def mount_small_filesystem(base: Path, kinds=("tmpfs", "ext4")) -> tuple:
    """Tries each kind in order: (SmallFilesystem, None) or (None, every reason it failed)."""
    reasons = []
    for kind in kinds:
        filesystem = SmallFilesystem(Path(base) / kind, kind)
        reason = filesystem.mount()
        if reason is None:
            return filesystem, None
        filesystem.unmount()
        reasons.append(reason)
    return None, "; ".join(reasons)


def fill(directory: Path) -> int:
    """Writes ballast files until the filesystem refuses more; returns the bytes written."""
    written = 0
    for name, chunk in (("ballast", 1 << 20), ("ballast-tail", 4096), ("ballast-crumbs", 512)):
        try:
            ballast = open(directory / name, "wb", buffering=0)
        except OSError as error:
            if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            continue
        with ballast:
            block = b"\0" * chunk
            try:
                while True:
                    written += ballast.write(block) or 0
            except OSError as error:
                if error.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
            try:
                os.fsync(ballast.fileno())
            except OSError:
                pass
    return written


def unfill(directory: Path) -> None:
    for name in ("ballast", "ballast-tail", "ballast-crumbs"):
        try:
            (directory / name).unlink()
        except FileNotFoundError:
            pass


def _transaction(smtp: SMTPConversation, text: bytes, recipient: str = "user@dest.test") -> Reply:
    smtp.expect("MAIL FROM:<sender@disk.test>", 250)
    smtp.expect(f"RCPT TO:<{recipient}>", 250)
    smtp.expect("DATA", 354)
    return smtp.finish_data(text)


def run_disk_full(work_dir: Path, kinds=("tmpfs", "ext4"), spooled: bool = True, full_hold: float = 3.0,
                  log: Log = _quiet) -> Result:
    """`spooled`: also send a message over the 256 KB inline limit (written to a spool file during DATA)
    while the disk is full."""
    result = Result("disk full")
    result.work_dir = work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    filesystem, reason = mount_small_filesystem(work_dir, kinds)
    if filesystem is None:
        result.skipped = f"no small filesystem could be mounted here: {reason}"
        return result
    result.name = f"disk full ({filesystem.kind}, {filesystem.free_bytes() // 1024} KB free at start)"
    sink = start_sink(name="disk-sink.test")
    sink.greeting = "421 4.3.2 Try later"   # keep everything queued while the disk is full
    server = PetrelServer(work_dir / "relay", {
        "queue": {"path": str(filesystem.path / "queue.sqlite")},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", **FAST_DELIVERY},
    })
    acknowledged: dict = {}   # subject -> queue id
    try:
        start_with_retries(server, keep_port=False)
        with Client(server.address) as smtp:
            smtp.ehlo()
            for index in range(8):
                subject = f"before-{index}"
                size = 350_000 if index == 7 else 3_000
                reply = _transaction(smtp, tagged_text(subject, index, size))
                if reply.code != 250:
                    result.fail(f"{subject} refused before the disk was full: {reply}")
                else:
                    acknowledged[subject] = queue_id_of(reply)
        queued_before = server.queue_ids()
        if not set(acknowledged.values()) <= queued_before:
            result.fail(f"acknowledged messages not in the queue: {set(acknowledged.values()) - queued_before}")
        log(f"disk: {len(acknowledged)} messages acknowledged and queued; filling {filesystem.path}")
        ballast = fill(filesystem.path)
        result.add("ballast written", f"{ballast // 1024} KB; free now {filesystem.free_bytes()} bytes")

        # Small messages: the queue write fails at the end of DATA -> 452 4.3.1, and the session goes on.
        replies = []
        with Client(server.address) as smtp:
            smtp.ehlo()
            for index in range(20):
                subject = f"full-{index}"
                reply = _transaction(smtp, tagged_text(subject, 100 + index, 3_000))
                replies.append(reply)
                if reply.code == 250:
                    acknowledged[subject] = queue_id_of(reply)   # it got space after all: it must not be lost
                elif (reply.code, reply.enhanced) == (452, "4.3.1"):
                    if sum(1 for r in replies if r.code == 452) >= 3:
                        break
            noop = smtp.command("NOOP")
        refused = [r for r in replies if (r.code, r.enhanced) == (452, "4.3.1")]
        other = [str(r) for r in replies if r.code != 250 and (r.code, r.enhanced) != (452, "4.3.1")]
        result.add("inline messages while full",
                   f"{len(replies)} sent: {len(refused)} x 452 4.3.1, {sum(1 for r in replies if r.code == 250)} x 250"
                   + (f", other: {other}" if other else ""))
        if refused:
            result.add("first refusal", str(refused[0]))
        if not refused:
            result.fail(f"no 452 4.3.1 at the end of DATA with the disk full; replies: {[str(r) for r in replies]}")
        if other:
            result.fail(f"replies other than 250 or 452 4.3.1 while full: {other}")
        if noop.code != 250:
            result.fail(f"the session did not go on after the 452 (NOOP -> {noop})")

        if spooled:
            outcome = "?"
            try:
                with Client(server.address) as smtp:
                    smtp.ehlo()
                    reply = _transaction(smtp, tagged_text("full-spooled", 200, 400_000))
                    outcome = str(reply)
                    if reply.code == 250:
                        acknowledged["full-spooled"] = queue_id_of(reply)
                    elif (reply.code, reply.enhanced) != (452, "4.3.1"):
                        result.fail(f"spooled message with the disk full: {reply}, expected 452 4.3.1")
            except (ConnectionClosed, ConnectionResetError, BrokenPipeError) as error:
                outcome = f"connection closed without a reply ({type(error).__name__})"
                result.fail("spooled message (400 KB, over the inline limit) with the disk full: the server "
                            "closed the connection without a reply instead of answering 452 4.3.1 at the end "
                            "of DATA (the spool write error ends the session; see the diagnosis in the report)")
            result.add("spooled message while full", outcome)

        # Stay full a while: the delivery engine keeps trying (and failing) to claim and record work.
        time.sleep(full_hold)
        alive = server.process.poll() is None
        result.add("server up while full", f"{alive} (after {full_hold:.0f} s full)")
        if not alive:
            result.fail(f"the server died while the disk was full (exit {server.process.returncode}):\n{log_tail(server)}")
            return result
        with Client(server.address) as smtp:
            if smtp.greeting.code != 220 or smtp.command("EHLO probe.test").code != 250:
                result.fail("a new session is not served normally while the disk is full")
        try:
            queued_full = server.queue_ids()
            missing = {s: q for s, q in acknowledged.items() if s.startswith("before") and q not in queued_full}
            if missing:
                result.fail(f"acknowledged messages missing from the queue while full: {missing}")
        except AssertionError as error:
            result.note(f"`petrel queue list` while the disk is full failed: {error}")

        unfill(filesystem.path)
        log(f"disk: ballast deleted, free {filesystem.free_bytes() // 1024} KB")
        resumed_at = time.monotonic()
        resumed: Optional[Reply] = None
        for attempt in range(50):
            with Client(server.address) as smtp:
                smtp.ehlo()
                resumed = _transaction(smtp, tagged_text(f"after-{attempt}", 300 + attempt, 3_000))
            if resumed.code == 250:
                acknowledged[f"after-{attempt}"] = queue_id_of(resumed)
                break
            time.sleep(0.1)
        result.add("acceptance after freeing space", f"{resumed} after {time.monotonic() - resumed_at:.2f} s")
        if resumed is None or resumed.code != 250:
            result.fail(f"acceptance did not resume after the ballast was deleted: {resumed}")
        if spooled:
            with Client(server.address) as smtp:
                smtp.ehlo()
                reply = _transaction(smtp, tagged_text("after-spooled", 400, 400_000))
            result.add("spooled message after freeing space", str(reply))
            if reply.code == 250:
                acknowledged["after-spooled"] = queue_id_of(reply)
            else:
                result.fail(f"a spooled message is refused after space was freed: {reply}")

        # Now let everything go out: every acknowledged message must reach the sink, intact.
        sink.greeting = "220 disk-sink.test ESMTP"

        def arrived() -> set:
            seen = set()
            for message in sink.snapshot():
                match = re.search(rb"^Subject: (\S+) #(\d+)\r?$", message.data, re.M)
                if match:
                    seen.add(match.group(1).decode())
            return seen

        wait_until(lambda: set(acknowledged) <= arrived(), 30.0, interval=0.2)
        missing = set(acknowledged) - arrived()
        wait_until(lambda: not server.queue_list(), 10.0, interval=0.5)
        left = server.queue_list()
        result.add("acknowledged messages", len(acknowledged))
        result.add("delivered after recovery", f"{len(set(acknowledged) & arrived())} of {len(acknowledged)}")
        result.add("left in the queue", len(left))
        if missing:
            result.fail(f"acknowledged messages never delivered: "
                        f"{sorted((tag, acknowledged[tag]) for tag in missing)}")
        if left:
            result.fail(f"messages stuck in the queue after recovery: {[m.get('queue_id') for m in left]}")
        errors = [line for line in server.log_text().splitlines() if " error " in line]
        result.add("error lines in the log", len(errors))
        exit_code = stop_server(server)
        if exit_code != 0:
            result.fail(f"the server did not stop cleanly on SIGTERM (exit {exit_code})")
    finally:
        server.kill()
        sink.stop()
        filesystem.unmount()
    return result


# ---------------------------------------------------------------------------------------------------
# 3. Slow and hostile clients


def _connect(address: tuple, source: Optional[str] = None, timeout: float = 10.0) -> socket.socket:
    sock = socket.create_connection(address, timeout=timeout, source_address=(source, 0) if source else None)
    sock.settimeout(timeout)
    return sock


def _read_until(sock: socket.socket, predicate: Callable[[bytes], bool], timeout: float) -> tuple:
    """Reads until `predicate(data)` or EOF or the time is up: (data, closed)."""
    deadline = time.monotonic() + timeout
    data = b""
    while not predicate(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return data, False
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return data, False
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _last_reply(data: bytes) -> str:
    lines = [line for line in data.split(b"\r\n") if line]
    return lines[-1].decode("utf-8", "replace") if lines else ""


class IdleFleet:
    """`count` connections that read their greeting (some also say EHLO) and then say nothing."""

    def __init__(self, address: tuple, count: int, per_source: int, first_source: int = 1):
        self.address = address
        self.count = count
        self.per_source = per_source
        self.first_source = first_source
        self.sockets: list = []
        self.opened_at: list = []
        self.greeting_failures: list = []

    def open(self) -> None:
        for index in range(self.count):
            source_index = self.first_source + index // self.per_source
            source = f"127.0.{1 + source_index // 250}.{1 + source_index % 250}"
            sock = _connect(self.address, source)
            greeting, _ = _read_until(sock, lambda d: b"\r\n" in d, 10.0)
            if not greeting.startswith(b"220"):
                self.greeting_failures.append(greeting[:80])
            if index % 2 == 1:
                sock.sendall(b"EHLO idle.test\r\n")
                _read_until(sock, lambda d: re.search(rb"(^|\r\n)250 ", d) is not None, 10.0)
            self.sockets.append(sock)
            self.opened_at.append(time.monotonic())

    def still_open(self) -> int:
        """How many have not been closed (nor sent anything) by the server."""
        count = 0
        for sock in self.sockets:
            sock.setblocking(False)
            try:
                data = sock.recv(1, socket.MSG_PEEK)
                if data:
                    continue  # something arrived (a timeout reply): not idle-open any more
            except BlockingIOError:
                count += 1
            except OSError:
                pass
            finally:
                sock.setblocking(True)
        return count

    def wait_closed(self, timeout: float) -> Counter:
        """Waits for the server to close each one; counts how each ended (its last reply or 'eof')."""
        outcomes: Counter = Counter()
        selector = selectors.DefaultSelector()
        buffers = {}
        for sock in self.sockets:
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ)
            buffers[sock] = b""
        deadline = time.monotonic() + timeout
        while buffers and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=min(1.0, max(0.0, deadline - time.monotonic()))):
                sock = key.fileobj
                try:
                    chunk = sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk = b""
                if chunk:
                    buffers[sock] += chunk
                    continue
                reply = _last_reply(buffers.pop(sock))
                outcomes[reply[:9] if reply else "closed without a reply"] += 1
                selector.unregister(sock)
        outcomes["still open"] += len(buffers)
        selector.close()
        return outcomes

    def close(self) -> None:
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


class Trickler:
    """Connections that send `NOOP\\r\\n` one byte a second each, from one source address; counts the replies."""

    def __init__(self, address: tuple, count: int, source: str):
        self.address = address
        self.count = count
        self.source = source
        self.sockets: list = []
        self.refused: list = []
        self.replies: Counter = Counter()
        self.closed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trickler", daemon=True)
        self.started_at = 0.0
        self.duration = 0.0

    def start(self) -> "Trickler":
        self.started_at = time.monotonic()
        for _ in range(self.count):
            sock = _connect(self.address, self.source)
            greeting, _ = _read_until(sock, lambda d: b"\r\n" in d, 10.0)
            if greeting.startswith(b"220"):
                sock.setblocking(False)
                self.sockets.append(sock)
            else:
                self.refused.append(_last_reply(greeting))
                sock.close()
        self._thread.start()
        return self

    def _run(self) -> None:
        script = b"NOOP\r\n"
        position = 0
        alive = list(self.sockets)
        while not self._stop.is_set() and alive:
            for sock in list(alive):
                try:
                    while True:
                        data = sock.recv(4096)
                        if not data:
                            raise ConnectionResetError
                        for line in data.split(b"\r\n"):
                            if line:
                                self.replies[line[:9].decode("utf-8", "replace")] += 1
                except BlockingIOError:
                    pass
                except OSError:
                    alive.remove(sock)
                    self.closed += 1
                    continue
                try:
                    sock.send(script[position % len(script):position % len(script) + 1])
                except OSError:
                    alive.remove(sock)
                    self.closed += 1
            position += 1
            self._stop.wait(1.0)

    def stop(self) -> None:
        if not self._stop.is_set():
            self.duration = time.monotonic() - self.started_at
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in self.sockets:
            try:
                sock.close()
            except OSError:
                pass


def _garbage_client(address: tuple, source: str, seed: int, outcome: list) -> None:
    """Sends lines of random bytes until the server gives up on it; records (5xx replies, last reply, closed)."""
    rng = random.Random(seed)
    try:
        sock = _connect(address, source)
    except OSError as error:
        outcome.append((0, f"connect failed: {error}", False))
        return
    try:
        greeting, _ = _read_until(sock, lambda d: b"\r\n" in d, 10.0)
        errors, last, closed = 0, _last_reply(greeting), False
        for _ in range(60):
            size = rng.choice([rng.randint(1, 80), rng.randint(80, 600), rng.randint(1500, 4000)])
            line = rng.randbytes(size).replace(b"\r\n", b"\n\r")
            try:
                sock.sendall(line + b"\r\n")
            except OSError:
                closed = True
                break
            data, closed = _read_until(sock, lambda d: d.endswith(b"\r\n"), 10.0)
            if data:
                last = _last_reply(data)
                if last.startswith("5"):
                    errors += 1
            if closed or last.startswith("421"):
                if not closed:
                    _, closed = _read_until(sock, lambda d: False, 5.0)
                break
        outcome.append((errors, last, closed))
    finally:
        sock.close()


@dataclass
class GoodRun:
    sessions: list = field(default_factory=list)     # connect .. 250, seconds
    after_dot: list = field(default_factory=list)    # final dot .. 250, seconds
    failures: list = field(default_factory=list)
    elapsed: float = 0.0
    slowest: tuple = (0.0, "")                       # (seconds, where the time went)


def well_behaved_client(address: tuple, seconds: float, first_number: int = 1) -> GoodRun:
    """One message per connection (EHLO, MAIL, RCPT, DATA, QUIT), back to back for `seconds`."""
    run = GoodRun()
    started = time.monotonic()
    number = first_number
    while time.monotonic() - started < seconds:
        began = time.monotonic()
        try:
            with Client(address, timeout=10) as smtp:
                greeted = time.monotonic()
                smtp.ehlo()
                smtp.expect("MAIL FROM:<good@client.test>", 250)
                smtp.expect(f"RCPT TO:<good{number}@dest.test>", 250)
                smtp.expect("DATA", 354)
                smtp.send(tagged_text("good", number, 4_000))
                dot = time.monotonic()
                reply = smtp.finish_data(b"")
                done = time.monotonic()
                if reply.code == 250:
                    run.sessions.append(done - began)
                    run.after_dot.append(done - dot)
                    if done - began > run.slowest[0]:
                        run.slowest = (done - began, f"connect+greeting {ms(greeted - began)}, EHLO..354 "
                                                     f"{ms(dot - greeted)}, dot..250 {ms(done - dot)}")
                else:
                    run.failures.append(str(reply))
                smtp.command("QUIT")
        except (OSError, ConnectionClosed, AssertionError) as error:
            run.failures.append(repr(error))
        number += 1
    run.elapsed = time.monotonic() - started
    return run


def well_behaved_client_process(address: tuple, seconds: float, first_number: int = 1) -> GoodRun:
    """`well_behaved_client` in a process of its own, so that the harness's other threads (hostile clients,
    the sink) never hold the GIL while it waits for the relay: the figures are the relay's."""
    import multiprocessing
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        pending = pool.apply_async(well_behaved_client, (address, seconds, first_number))
        return pending.get(timeout=seconds + 120.0)


def raise_open_files_limit(needed: int) -> Optional[str]:
    """Raises this process's soft RLIMIT_NOFILE (the relay inherits it) to at least `needed`; None when
    done, else why not."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    if hard != resource.RLIM_INFINITY and hard < needed:
        return f"the open-files limit is {hard} (hard); {needed} are needed"
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return None


def run_hostile_clients(work_dir: Path, idle: int = 200, garbage: int = 5, measure_seconds: float = 5.0,
                        command_timeout: int = 10, per_client: int = 20, log: Log = _quiet) -> Result:
    result = Result(f"slow and hostile clients ({idle} idle connections)")
    result.work_dir = work_dir
    if not loopback_alias_usable("127.0.1.1"):
        result.skipped = "127.0.x.y source addresses are not usable here"
        return result
    reason = raise_open_files_limit(2 * idle + 512)
    if reason is not None:
        result.skipped = reason
        return result
    sink = start_sink(name="hostile-sink.test")
    server = PetrelServer(work_dir / "relay", {
        "inbound": {"command_timeout": f"{command_timeout}s", "data_timeout": f"{command_timeout}s",
                    "max_connections": idle + 200, "max_connections_per_client": per_client,
                    "max_message_size": "5MB"},
        "delivery": {"smarthost": f"127.0.0.1:{sink.port}", **FAST_DELIVERY},
    })
    fleet: Optional[IdleFleet] = None
    trickler: Optional[Trickler] = None
    sampler: Optional[RSSSampler] = None
    threads: list = []
    try:
        start_with_retries(server, keep_port=False)
        pid = server.process.pid
        sampler = RSSSampler(pid).start()
        time.sleep(0.3)
        rss_start = rss_kb(pid)

        baseline = well_behaved_client_process(server.address, min(3.0, measure_seconds))
        opened = time.monotonic()
        fleet = IdleFleet(server.address, idle, per_source=per_client)
        fleet.open()
        open_time = time.monotonic() - opened
        time.sleep(0.5)
        rss_idle = rss_kb(pid)
        log(f"hostile: {idle} idle connections open in {open_time:.1f}s; RSS {mb(rss_start)} -> {mb(rss_idle)}")
        if fleet.greeting_failures:
            result.fail(f"{len(fleet.greeting_failures)} idle connections were not greeted with 220: "
                        f"{fleet.greeting_failures[:3]}")

        trickler = Trickler(server.address, per_client + 2, "127.0.0.3").start()

        garbage_outcomes: list = []
        for index in range(garbage):
            thread = threading.Thread(target=_garbage_client, args=(server.address, "127.0.0.4", index, garbage_outcomes),
                                      daemon=True, name=f"garbage-{index}")
            thread.start()
            threads.append(thread)

        # 10 MB without CRLF: (a) then CRLF -> 500 5.5.2, the session goes on; (b) then silence -> 421 4.4.2;
        # (c) a 10 MB text line in DATA, over max_message_size -> 552 5.3.4, the session goes on.
        long_line: dict = {}

        def long_line_then_crlf() -> None:
            try:
                with Client(server.address, source_address=("127.0.0.5", 0), timeout=30) as smtp:
                    smtp.ehlo()
                    smtp.send(b"EHLO " + b"A" * (10 * 1024 * 1024))
                    quiet = smtp.nothing_more_within(0.5)
                    smtp.send(b"\r\n")
                    reply = smtp.read_reply()
                    after = smtp.command("NOOP")
                    long_line["crlf"] = (str(reply), (reply.code, reply.enhanced), after.code, quiet)
            except Exception as error:  # noqa: BLE001 - reported
                long_line["crlf"] = (f"error: {error!r}", None, None, None)

        def long_line_then_silence() -> None:
            try:
                sock = _connect(server.address, "127.0.0.5", timeout=30)
                _read_until(sock, lambda d: b"\r\n" in d, 10.0)
                sock.sendall(b"X" * (10 * 1024 * 1024))
                sent_at = time.monotonic()
                data, closed = _read_until(sock, lambda d: False, command_timeout + 15.0)
                long_line["silence"] = (_last_reply(data), closed, time.monotonic() - sent_at)
                sock.close()
            except Exception as error:  # noqa: BLE001
                long_line["silence"] = (f"error: {error!r}", None, None)

        def long_line_in_data() -> None:
            try:
                with Client(server.address, source_address=("127.0.0.5", 0), timeout=30) as smtp:
                    smtp.ehlo()
                    smtp.expect("MAIL FROM:<big@hostile.test>", 250)
                    smtp.expect("RCPT TO:<user@dest.test>", 250)
                    smtp.expect("DATA", 354)
                    reply = smtp.finish_data(b"Subject: long line\r\n\r\n" + b"L" * (10 * 1024 * 1024) + b"\r\n")
                    after = smtp.command("NOOP")
                    long_line["data"] = (str(reply), (reply.code, reply.enhanced), after.code)
            except Exception as error:  # noqa: BLE001
                long_line["data"] = (f"error: {error!r}", None, None)

        stalled: list = []

        def stalled_in_data(index: int) -> None:
            try:
                with Client(server.address, source_address=("127.0.0.6", 0), timeout=30) as smtp:
                    smtp.ehlo()
                    smtp.expect("MAIL FROM:<stall@hostile.test>", 250)
                    smtp.expect(f"RCPT TO:<stalled{index}@dest.test>", 250)
                    smtp.expect("DATA", 354)
                    smtp.send(b"Subject: stalled #%d\r\n\r\nhalf a mess" % index)
                    began = time.monotonic()
                    data = smtp.wait_for_close(command_timeout + 15.0)
                    stalled.append((_last_reply(data), time.monotonic() - began))
            except Exception as error:  # noqa: BLE001
                stalled.append((f"error: {error!r}", None))

        for target, args in ((long_line_then_crlf, ()), (long_line_then_silence, ()), (long_line_in_data, ()),
                             *((stalled_in_data, (i,)) for i in range(3))):
            thread = threading.Thread(target=target, args=args, daemon=True)
            thread.start()
            threads.append(thread)

        # The well-behaved client, meanwhile: one message per connection, as fast as it goes.
        good = well_behaved_client_process(server.address, measure_seconds, first_number=len(baseline.sessions) + 1)
        sessions, after_dot, refused_good = good.sessions, good.after_dot, good.failures
        measured = good.elapsed
        rss_during = sampler.peak(since=opened)
        still_open = fleet.still_open()
        log(f"hostile: good client {len(sessions)} messages in {measured:.1f}s; idle still open {still_open}/{idle}")

        # Now the limits: the idle ones must be timed out (421 4.4.2) once command_timeout has passed.
        idle_outcomes = fleet.wait_closed(timeout=max(0.0, fleet.opened_at[-1] + command_timeout + 10.0 - time.monotonic()))
        for thread in threads:
            thread.join(timeout=command_timeout + 30.0)
        hung = [t.name for t in threads if t.is_alive()]
        good_total = len(sessions) + len(baseline.sessions)
        wait_until(lambda: sum(1 for m in sink.snapshot() if m.mail_from == "good@client.test") >= good_total,
                   20.0, interval=0.2)
        delivered = sum(1 for m in sink.snapshot() if m.mail_from == "good@client.test")
        stalled_queued = [m for m in sink.snapshot() if m.mail_from == "stall@hostile.test"]
        rss_end = rss_kb(pid)
        hwm = hwm_kb(pid)
        trickler.stop()

        p = percentiles(sessions, (50, 90, 99))
        result.add("well-behaved client", f"{len(sessions)} messages in {measured:.1f} s "
                   f"({len(sessions) / measured:.0f}/s), {len(refused_good)} refused or failed")
        result.add("  whole session (connect..250)", latency_summary(sessions))
        result.add("  250 after the dot", latency_summary(after_dot))
        result.add("  slowest session", f"{ms(good.slowest[0])}: {good.slowest[1]}")
        result.add("  delivered to the sink", f"{delivered} of {len(sessions) + len(baseline.sessions)}")
        result.add("baseline, quiet server", f"{len(baseline.sessions)} messages in {baseline.elapsed:.1f} s; "
                   f"session {latency_summary(baseline.sessions)}")
        result.add("  250 after the dot", latency_summary(baseline.after_dot))
        result.add("idle connections", f"{idle} opened in {open_time:.1f} s from {(idle + per_client - 1) // per_client} "
                   f"addresses; {still_open} still open after the measurement")
        result.add("idle connections' end", ", ".join(f"{k}: {v}" for k, v in sorted(idle_outcomes.items())))
        result.add("RSS at start", mb(rss_start))
        result.add(f"RSS with {idle} idle connections", mb(rss_idle))
        result.add("RSS peak during the hostile load", mb(rss_during))
        result.add("RSS at the end / VmHWM", f"{mb(rss_end)} / {mb(hwm)}")
        result.add("tricklers (1 byte/s, one address)", f"{len(trickler.sockets)} admitted, {len(trickler.refused)} refused "
                   f"at connect ({', '.join(sorted(set(r[:9] for r in trickler.refused)))}); over {trickler.duration:.0f} s: "
                   f"replies {dict(trickler.replies)}, closed by the server {trickler.closed}")
        result.add("garbage clients", ", ".join(f"{e} x 5xx then '{last[:30]}'{' closed' if closed else ' OPEN'}"
                                                for e, last, closed in garbage_outcomes[:5])
                   + (" ..." if len(garbage_outcomes) > 5 else ""))
        result.add("10 MB line, then CRLF", str(long_line.get("crlf")))
        result.add("10 MB line, then silence", str(long_line.get("silence")))
        result.add("10 MB line inside DATA (limit 5MB)", str(long_line.get("data")))
        result.add("stalled mid-DATA", str(stalled))

        # ---- verdicts
        if not sessions:
            result.fail(f"the well-behaved client got nothing accepted: {refused_good[:3]}")
        elif p[50] > 0.2:
            result.fail(f"the well-behaved client's median session took {ms(p[50])} (bound 200 ms)")
        if refused_good:
            result.fail(f"the well-behaved client was refused or failed {len(refused_good)} times: {refused_good[:3]}")
        if delivered < good_total:
            result.fail(f"only {delivered} of the well-behaved client's {good_total} messages were delivered")
        if baseline.failures:
            result.fail(f"the well-behaved client failed on a quiet server: {baseline.failures[:3]}")
        if still_open < idle:
            result.fail(f"only {still_open} of {idle} idle connections were still open after the measurement "
                        f"(command_timeout {command_timeout}s)")
        if idle_outcomes.get("421 4.4.2", 0) != idle:
            result.fail(f"idle connections did not all end with 421 4.4.2: {dict(idle_outcomes)}")
        if len(trickler.refused) != 2 or any(not r.startswith("421 4.7.0") for r in trickler.refused):
            result.fail(f"expected exactly 2 tricklers refused with 421 4.7.0 (per-client limit {per_client}), "
                        f"got {trickler.refused}")
        if trickler.replies.get("250 2.0.0", 0) < len(trickler.sockets) and trickler.duration > 8:
            result.fail(f"tricklers got no 250 to a NOOP sent one byte a second: {dict(trickler.replies)}")
        for errors, last, closed in garbage_outcomes:
            if not (closed and last.startswith("421 4.7.0")):
                result.fail(f"a garbage client did not end with 421 4.7.0 and a close: {errors} errors, last {last!r}, "
                            f"closed {closed}")
                break
        if len(garbage_outcomes) != garbage:
            result.fail(f"{garbage - len(garbage_outcomes)} garbage clients never finished")
        crlf = long_line.get("crlf")
        if not crlf or crlf[1] != (500, "5.5.2") or crlf[2] != 250:
            result.fail(f"10 MB line then CRLF: expected 500 5.5.2 and the session going on, got {crlf}")
        silence = long_line.get("silence")
        if not silence or not silence[0].startswith("421 4.4.2") or not silence[1]:
            result.fail(f"10 MB line then silence: expected 421 4.4.2 and a close, got {silence}")
        data = long_line.get("data")
        if not data or data[1] != (552, "5.3.4") or data[2] != 250:
            result.fail(f"10 MB line in DATA over max_message_size: expected 552 5.3.4 and the session going on, got {data}")
        if len(stalled) != 3 or any(not reply.startswith("421 4.4.2") for reply, _ in stalled):
            result.fail(f"clients stalled mid-DATA: expected 421 4.4.2 each, got {stalled}")
        if stalled_queued:
            result.fail(f"{len(stalled_queued)} messages of clients stalled mid-DATA were delivered")
        if hung:
            result.fail(f"hostile client threads still running: {hung}")
        if server.process.poll() is not None:
            result.fail(f"the server exited ({server.process.returncode}):\n{log_tail(server)}")
        result.note("command_timeout is an idle timeout re-armed by every byte read (RFC 5321 §4.5.3.2), so a "
                    "client trickling a byte a second is never timed out; only the per-client and total "
                    "connection limits bound how many slots such clients hold (Postfix behaves the same "
                    "without smtpd_per_record_deadline)")
    finally:
        if trickler is not None:
            trickler.stop()
        if fleet is not None:
            fleet.close()
        if sampler is not None:
            sampler.stop()
        stop_server(server)
        server.kill()
        sink.stop()
    return result


# ---------------------------------------------------------------------------------------------------
# 4. Destination faults

FAULTS = ("hang_after_greeting", "reset_mid_data", "421_at_connect")


def _apply_fault(sink: SMTPSink, fault: str, on: bool) -> None:
    if fault == "hang_after_greeting":
        sink.hang_after_greeting = on
    elif fault == "reset_mid_data":
        sink.reset_mid_data = on
    elif fault == "421_at_connect":
        sink.greeting = "421 4.3.2 Service not available, try later" if on else f"220 {sink.name} ESMTP sink"
    else:
        raise ValueError(fault)


def _failed_attempts(sink: SMTPSink, fault: str) -> int:
    return sink.resets if fault == "reset_mid_data" else sink.connections


LOG_LINE = re.compile(r"(?P<queue_id>[0-9A-Z]{14}): to=<(?P<to>[^>]*)>, relay=(?P<relay>\S+), delay=[0-9.]+, "
                      r"attempts=(?P<attempts>\d+), dsn=(?P<dsn>[0-9.]+), status=(?P<status>[a-z]+) \((?P<reply>.*)\)\s*$")


def delivery_lines(server: PetrelServer, queue_id: str) -> list:
    return [match for match in (LOG_LINE.search(line) for line in server.log_text().splitlines())
            if match and match["queue_id"] == queue_id]


def run_destination_faults(work_dir: Path, faults=FAULTS, failed_attempts: int = 2, log: Log = _quiet) -> Result:
    """One relay; each fault has its own sink and recipient domain (`[routes]`); the faults run side by side.
    Each: the message is deferred and retried (at least `failed_attempts` failed attempts seen at the sink),
    stays queued, and once the fault is removed is delivered exactly once; no bounce is sent."""
    result = Result(f"destination faults ({', '.join(faults)})")
    result.work_dir = work_dir
    home = start_sink(name="home.sink.test")        # the smarthost: would receive any bounce
    sinks = {}
    server: Optional[PetrelServer] = None
    try:
        for fault in faults:
            sinks[fault] = start_sink(name=f"{fault.replace('_', '-')}.sink.test")
            _apply_fault(sinks[fault], fault, True)
        server = PetrelServer(work_dir / "relay", {
            "delivery": {"smarthost": f"127.0.0.1:{home.port}", **FAST_DELIVERY},
            "routes": {f"{fault.replace('_', '-')}.test": f"127.0.0.1:{sinks[fault].port}" for fault in faults},
        })
        start_with_retries(server, keep_port=False)
        queue_ids = {}
        sent_at = {}
        with Client(server.address) as smtp:
            smtp.ehlo()
            for fault in faults:
                text = tagged_text(f"fault-{fault}", 1, 2_000)
                queue_ids[fault] = smtp.send_mail("sender@home.test", [f"user@{fault.replace('_', '-')}.test"], text)
                sent_at[fault] = time.monotonic()
        pending = set(faults)
        deadline = time.monotonic() + 40.0
        cleared_at, failures_seen = {}, {}
        while pending and time.monotonic() < deadline:
            for fault in sorted(pending):
                sink = sinks[fault]
                if fault not in cleared_at and _failed_attempts(sink, fault) >= failed_attempts:
                    # Retried, not lost: still queued with its recipient pending.
                    shown = server.queue_show(queue_ids[fault])
                    if shown is None:
                        result.fail(f"{fault}: {queue_ids[fault]} left the queue while its next hop was failing")
                    _apply_fault(sink, fault, False)
                    cleared_at[fault] = time.monotonic()
                    failures_seen[fault] = _failed_attempts(sink, fault)
                    log(f"faults: {fault}: {_failed_attempts(sink, fault)} failed attempts; fault removed")
                if fault in cleared_at and sink.snapshot():
                    pending.discard(fault)
            time.sleep(0.1)
        for fault in faults:
            sink = sinks[fault]
            lines = delivery_lines(server, queue_ids[fault])
            deferred = [line for line in lines if line["status"] == "deferred"]
            sent = [line for line in lines if line["status"] == "sent"]
            if fault in cleared_at:
                first = f"{deferred[0]['dsn']} {deferred[0]['reply']}" if deferred else "-"
                result.add(fault, f"{len(deferred)} deferrals logged (first: {first}); {failures_seen[fault]} "
                           f"failed attempts seen at the sink in {cleared_at[fault] - sent_at[fault]:.1f} s; then "
                           f"delivered {len(sink.snapshot())}x at attempt {sent[0]['attempts'] if sent else '?'}")
            else:
                result.add(fault, f"never {failed_attempts} failed attempts ({_failed_attempts(sink, fault)} seen)")
            if fault not in cleared_at:
                result.fail(f"{fault}: only {_failed_attempts(sink, fault)} failed attempts within the bound: not retried?")
            elif not sink.snapshot():
                result.fail(f"{fault}: not delivered after the fault was removed ({queue_ids[fault]}); log: "
                            f"{[line.group(0) for line in lines][-3:]}")
            if fault in cleared_at and len(deferred) < failed_attempts and fault != "hang_after_greeting":
                result.note(f"{fault}: {len(deferred)} deferral lines logged for {failed_attempts}+ failed attempts")
            if fault in cleared_at and not deferred:
                result.fail(f"{fault}: no status=deferred line in the log for {queue_ids[fault]}")
            if len(sink.snapshot()) > 1:
                result.fail(f"{fault}: delivered {len(sink.snapshot())} times")
            if any(line["status"] in ("bounced", "expired", "failed") for line in lines):
                result.fail(f"{fault}: the message was failed: {[line.group(0) for line in lines]}")
        wait_until(lambda: not server.queue_list(), 10.0, interval=0.5)
        remaining = server.queue_list()
        if remaining:
            result.fail(f"messages stuck in the queue: {[m.get('queue_id') for m in remaining]}")
        time.sleep(0.5)
        if home.snapshot():
            result.fail(f"{len(home.snapshot())} messages (bounces?) reached the smarthost: "
                        f"{[m.mail_from for m in home.snapshot()]}")
        result.add("left in the queue", len(remaining))
        result.add("bounces", len(home.snapshot()))
    finally:
        stop_server(server)
        if server is not None:
            server.kill()
        for sink in sinks.values():
            sink.stop()
        home.stop()
    return result
