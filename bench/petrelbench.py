#!/usr/bin/env python3
"""Shared code for bench/scale, bench/latency and bench/memory (python3 standard library only).

Imported by those scripts; a few subcommands are also run from shell hooks (relay.sh's PRE/POST_RUN_HOOK):

  bench/petrelbench.py count DB                    messages in the queue (read-only look, server may run)
  bench/petrelbench.py waitcount DB N TIMEOUT_S    wait until the queue holds N messages; prints the count
  bench/petrelbench.py fill DB DEPTH [BODY_LEN]    bulk-insert DEPTH deferred messages (see fill_queue)
  bench/petrelbench.py check DB DEPTH              are the DEPTH pre-filled deferred recipients untouched?
  bench/petrelbench.py leftovers DB DEPTH          the recipients beyond the first DEPTH messages (evidence when
                                                   a run's messages did not drain)

What lives here:
  - in_private_netns(): re-executes the calling script in a private loopback-only network namespace
    (`unshare -n`), like bench/run and bench/profile, so ports 2525/2526 never clash with anything.
  - write_config(): a petrel.toml like bench/run's (127.0.0.1:2525, smarthost 127.0.0.1:2526).
  - Petrel: starts `petrel serve` with $NOTIFY_SOCKET pointing at a datagram socket of ours, so it can time
    both systemd readiness (READY=1) and the first 220 greeting; stops it with SIGTERM by PID.
  - Sink: smtp-sink on a port (counts messages with -c), stopped by PID.
  - fill_queue(): the synthetic deferred queue of bench/scale.
  - proc_status() / cpu_seconds(): VmRSS/VmHWM and CPU time from /proc.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_BIN = ROOT / ".build-release" / "release" / "petrel"
BENCH_DIR = Path(os.environ.get("BENCH_DIR") or (ROOT.parent / "shared" / "bench")).resolve()
LISTEN_PORT = 2525
SINK_PORT = 2526


def log(prog: str, msg: str) -> None:
    print(f"# {prog}: {msg}", file=sys.stderr, flush=True)


def petrel_bin() -> str:
    b = os.environ.get("PETREL_BIN") or str(DEFAULT_BIN)
    if not os.access(b, os.X_OK):
        sys.exit(f"no petrel binary at {b}: build it with `swift build -c release --product petrel "
                 f"--scratch-path .build-release` (bench/run does) or set PETREL_BIN")
    return b


def snapshot_bin(prog: str) -> str:
    """Copies the petrel binary to a private folder (removed at exit) and points PETREL_BIN at the copy, so
    that a rebuild during the run (ETXTBSY, or a different binary half-way) cannot disturb it. Waits while the
    file is being written (modified in the last 3 s). Sets PETREL_BIN_SOURCE and PETREL_BIN_BUILT for reports."""
    import atexit
    src = petrel_bin()
    if os.environ.get("PETREL_BIN_SOURCE"):
        return src
    d = tempfile.mkdtemp(prefix="petrel-bench-bin.")
    atexit.register(shutil.rmtree, d, True)
    dst = os.path.join(d, "petrel")
    for attempt in range(120):
        try:
            m0 = os.stat(src).st_mtime
            if time.time() - m0 < 3:
                raise OSError("being written")
            shutil.copy2(src, dst)
            if os.stat(src).st_mtime == m0 and subprocess.run([dst, "--help"], capture_output=True, timeout=30).returncode == 0:
                break
        except (OSError, subprocess.TimeoutExpired) as e:
            if attempt == 0:
                log(prog, f"waiting for {src} ({e})")
        time.sleep(1)
    else:
        sys.exit(f"{prog}: could not take a stable copy of {src}")
    os.environ["PETREL_BIN_SOURCE"] = src
    os.environ["PETREL_BIN_BUILT"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(m0))
    os.environ["PETREL_BIN"] = dst
    return dst


def bin_description() -> str:
    src = os.environ.get("PETREL_BIN_SOURCE") or petrel_bin()
    built = os.environ.get("PETREL_BIN_BUILT") or time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(os.path.getmtime(src)))
    return f"{src} (built {built}; a copy taken at start was run)"


def in_private_netns(prog: str) -> None:
    """Re-exec the running script inside `unshare -n` (loopback only), unless already there or BENCH_NETNS=0."""
    if os.environ.get("PETREL_BENCH_IN_NETNS") or os.environ.get("BENCH_NETNS", "1") == "0":
        return
    if os.geteuid() != 0:
        sys.exit(f"{prog}: run as root (private network namespace), or set BENCH_NETNS=0")
    os.environ["PETREL_BENCH_IN_NETNS"] = "1"
    os.environ["BENCH_IN_NETNS"] = "1"  # the shared harness then stays in this namespace
    script = os.path.abspath(sys.argv[0])
    os.execvp("unshare", ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" "$@"',
                          sys.executable, script, *sys.argv[1:]])


def raise_nofile(n: int = 65536) -> int:
    """Raise this process's open-file limit (children inherit it). Returns the soft limit now in force."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(n, hard if hard != resource.RLIM_INFINITY else n))
    if want < n and os.geteuid() == 0:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, max(n, hard if hard != resource.RLIM_INFINITY else n)))
            return n
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def port_busy(port: int) -> bool:
    out = subprocess.run(["ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True).stdout
    return bool(out.strip())


def write_config(path: Path, queue_path: Path, *, smarthost: str = f"127.0.0.1:{SINK_PORT}", workers: int = 64,
                 max_connections: int = 2000, max_message_size: str | None = None, extra: str = "") -> Path:
    size = f'max_message_size = "{max_message_size}"\n' if max_message_size else ""
    path.write_text(f"""# written by {Path(sys.argv[0]).name}
hostname = "bench.test"
[inbound]
listen = ["127.0.0.1:{LISTEN_PORT}"]
max_connections = {max_connections}
max_connections_per_client = {max_connections}
{size}[access]
relay_networks = ["127.0.0.0/8"]
[queue]
path = "{queue_path}"
[delivery]
smarthost = "{smarthost}"
workers = {workers}
max_connections_per_domain = {workers}
retry_min = "5s"
retry_max = "30s"
{extra}""")
    return path


def read_greeting(host: str, port: int, timeout: float = 1.0) -> str | None:
    """Connect, read the first reply line; None if the connection fails."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while b"\n" not in buf:
                chunk = s.recv(512)
                if not chunk:
                    break
                buf += chunk
            try:
                s.sendall(b"QUIT\r\n")
            except OSError:
                pass
            return buf.decode(errors="replace").strip()
    except OSError:
        return None


class Petrel:
    """One `petrel serve` process. start() measures: t_ready_ms (READY=1 on $NOTIFY_SOCKET) and t_220_ms
    (the first connection that gets a 220 greeting), both from just before the exec."""

    def __init__(self, config: Path, log_path: Path, *, log_level: str | None = None, notify: bool = True):
        self.config, self.log_path = config, log_path
        self.log_level = log_level or os.environ.get("PETREL_LOG_LEVEL", "warning")
        self.notify = notify
        self.proc: subprocess.Popen | None = None
        self.t_ready_ms: float | None = None
        self.t_220_ms: float | None = None
        self.greeting: str | None = None
        self._sock: socket.socket | None = None
        self._sockdir: str | None = None

    @property
    def pid(self) -> int:
        assert self.proc
        return self.proc.pid

    def start(self, timeout: float = 120.0, poll: float = 0.002) -> "Petrel":
        if port_busy(LISTEN_PORT):
            raise RuntimeError(f"port {LISTEN_PORT} is busy")
        env = dict(os.environ, PETREL_LOG_LEVEL=self.log_level)
        env.pop("NOTIFY_SOCKET", None)
        if self.notify:
            self._sockdir = tempfile.mkdtemp(prefix="petrel-notify.")
            path = os.path.join(self._sockdir, "notify")
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.bind(path)
            self._sock.setblocking(False)
            env["NOTIFY_SOCKET"] = path
        logf = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen([petrel_bin(), "serve", "--config", str(self.config)], stdout=logf,
                                     stderr=logf, stdin=subprocess.DEVNULL, env=env)
        logf.close()
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            self._drain_notify(t0)
            if self.proc.poll() is not None:
                raise RuntimeError(f"petrel exited with {self.proc.returncode} at start-up; see {self.log_path}")
            if self.t_220_ms is None:
                g = read_greeting("127.0.0.1", LISTEN_PORT, timeout=max(1.0, deadline - time.monotonic()))
                if g is not None and g.startswith("220"):
                    self.t_220_ms = (time.monotonic() - t0) * 1000
                    self.greeting = g
            if self.t_220_ms is not None and (self.t_ready_ms is not None or not self.notify):
                return self
            if self.t_220_ms is not None and (time.monotonic() - t0) * 1000 > self.t_220_ms + 5000:
                return self  # no READY=1 within 5 s of the greeting; report it as missing
            time.sleep(poll)
        self.stop()
        raise RuntimeError(f"petrel did not answer 220 within {timeout:.0f} s; see {self.log_path}")

    def _drain_notify(self, t0: float) -> None:
        if not self._sock:
            return
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return
            if self.t_ready_ms is None and b"READY=1" in data.split(b"\n"):
                self.t_ready_ms = (time.monotonic() - t0) * 1000

    def stop(self, timeout: float = 30.0) -> float | None:
        """SIGTERM, wait (then SIGKILL after `timeout`). Returns the ms the graceful stop took."""
        if not self.proc:
            return None
        ms = None
        if self.proc.poll() is None:
            t = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
                ms = (time.monotonic() - t) * 1000
            except subprocess.TimeoutExpired:
                print(f"# petrel {self.proc.pid} did not stop within {timeout:.0f} s of SIGTERM; killing it",
                      file=sys.stderr)
                self.proc.kill()
                self.proc.wait()
        if self._sock:
            self._sock.close()
            self._sock = None
        if self._sockdir:
            shutil.rmtree(self._sockdir, ignore_errors=True)
            self._sockdir = None
        return ms


class Sink:
    """smtp-sink on 127.0.0.1:PORT, counting messages (-c) into OUTFILE."""

    def __init__(self, out: Path, port: int = SINK_PORT, backlog: int = 1024):
        self.out, self.port, self.backlog = out, port, backlog
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Sink":
        if port_busy(self.port):
            raise RuntimeError(f"sink port {self.port} is busy")
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        with open(self.out, "wb") as f:
            self.proc = subprocess.Popen(["smtp-sink", *user, "-c", "-t", "600", "-m", "1024",
                                          f"127.0.0.1:{self.port}", str(self.backlog)], stdout=f, stderr=f)
        for _ in range(100):
            if port_busy(self.port):
                return self
            time.sleep(0.05)
        raise RuntimeError("smtp-sink did not start")

    def count(self) -> int:
        try:
            with open(self.out, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - 512))
                m = re.findall(rb"mesg=(\d+)", f.read())
            return int(m[-1]) if m else 0
        except OSError:
            return 0

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- /proc ----------------------------------------------------------------------------------------------

def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB), Threads and open fds of a process."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[k] = int(v.split()[0])
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError):
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """user+system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        s = f.read()
    fl = s[s.rindex(b")") + 2:].split()
    return (int(fl[11]) + int(fl[12])) / os.sysconf("SC_CLK_TCK")


def median_range(vals: list[float], digits: int = 0) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "—"
    m = statistics.median(vals)
    return f"{m:,.{digits}f} [{min(vals):,.{digits}f}..{max(vals):,.{digits}f}]"


def percentile(sorted_vals: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(0, min(len(sorted_vals) - 1, int(-(-p * len(sorted_vals) // 100)) - 1))
    return sorted_vals[k]


# --- the queue ------------------------------------------------------------------------------------------

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
QID_EPOCH_MS = 1_577_836_800_000  # 2020-01-01, as Petrel's QueueID


def queue_id(arrived_ms: int, n: int) -> str:
    """A 14-character Petrel queue id: 10 base32 digits of microseconds since 2020, 4 of `n` (unique per row)."""
    micros = max(0, (arrived_ms - QID_EPOCH_MS) * 1000)
    chars = []
    r = n & 0xFFFFF
    for _ in range(4):
        chars.append(CROCKFORD[r & 31])
        r >>= 5
    for _ in range(10):
        chars.append(CROCKFORD[micros & 31])
        micros >>= 5
    return "".join(reversed(chars))


def synthetic_body(length: int) -> bytes:
    """A message like smtp-source's (-l LENGTH): four header lines, a blank line, LENGTH bytes of 80-column
    text lines, CRLF line ends."""
    head = (b"From: <sender@src.bench.test>\r\nTo: <rcpt@dst.bench.test>\r\n"
            b"Date: Sun, 22 Nov 2026 06:05:43 +0000 (UTC)\r\nMessage-Id: <bench.scale@src.bench.test>\r\n\r\n")
    lines, n = [], 0
    while n < length:
        ln = (str(len(lines) % 10).encode() + b"X" * 78)[: max(1, min(78, length - n - 2))] + b"\r\n"
        lines.append(ln)
        n += len(ln)
    return head + b"".join(lines)


def fill_queue(db_path: str, depth: int, body_len: int = 4096, now_ms: int | None = None,
               chunk: int = 100_000, progress=None) -> dict:
    """Bulk-inserts `depth` deferred messages into a queue whose schema Petrel has already created.

    Each message: one `message` row (arrived spread evenly over the last 48 h, expiring 5 days after
    arrival, as max_queue_lifetime does), one `message_content` row (a Received: trace header like Petrel's
    and the same `body_len`-byte text inline as a BLOB, as Petrel stores bodies up to 256 KiB), and one
    `recipient` row: state 'deferred', attempts 1, last_reply a 451 (5 min after arrival), next_attempt_at 24-25 h
    from now (scattered, so the recipient_due index is filled in random order), 1,000 recipient domains.
    Rows are made by a recursive CTE in transactions of `chunk` messages, with journal_mode=OFF and
    synchronous=OFF during the load (a bulk load; Petrel's own writes are WAL + FULL), then the file is
    switched back to WAL. Nothing is delivered from it during a run: nothing falls due for 24 h."""
    now_ms = now_ms or int(time.time() * 1000)
    body = synthetic_body(body_len)
    span = 48 * 3600 * 1000
    step = max(1, span // max(1, depth))
    base_arrival = now_ms - span - 600_000  # the newest arrived 10 min ago; each was last tried 5 min after arrival
    con = sqlite3.connect(db_path, isolation_level=None)
    con.create_function("qid", 2, queue_id, deterministic=True)
    assert con.execute("SELECT count(*) FROM message").fetchone()[0] == 0, "the queue is not empty"
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("PRAGMA journal_mode=OFF")
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-1000000")  # 1 GB: the indexes stay in memory during the load
    con.execute("PRAGMA temp_store=MEMORY")
    received = ("'Received: from src.bench.test ([127.0.0.1])' || char(13,10) || char(9) || 'by bench.test (Petrel) "
                "with ESMTP id ' || qid(?3 + (i - 1) * ?4, i) || char(13,10) || char(9) || 'for <rcpt' || i || '@d' || "
                "(i % 1000) || '.example>; Fri, 20 Nov 2026 06:05:43 +0000' || char(13,10)")
    t0 = time.monotonic()
    for lo in range(1, depth + 1, chunk):
        hi = min(depth, lo + chunk - 1)
        args = (lo, hi, base_arrival, step)
        con.execute("BEGIN")
        cte = "WITH RECURSIVE c(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM c WHERE i < ?2) "
        con.execute(cte + f"""
            INSERT INTO message (id, queue_id, return_path, size, arrived_at, expires_at, client_address, client_helo,
                                 protocol, is_smtputf8, is_held)
            SELECT i, qid(?3 + (i - 1) * ?4, i), 'sender' || (i % 97) || '@src.bench.test',
                   length(CAST({received} AS BLOB)) + ?5, ?3 + (i - 1) * ?4, ?3 + (i - 1) * ?4 + 5 * 86400000,
                   '127.0.0.1', 'src.bench.test', 'ESMTP', 0, 0
            FROM c""", args + (len(body),))
        con.execute(cte + f"""
            INSERT INTO message_content (message_id, trace_headers, body)
            SELECT i, CAST({received} AS BLOB), ?5 FROM c""", args + (body,))
        con.execute(cte + """
            INSERT INTO recipient (id, message_id, address, domain, state, attempts, next_attempt_at, last_attempt_at,
                                   last_reply, last_relay)
            SELECT i, i, 'rcpt' || i || '@d' || (i % 1000) || '.example', 'd' || (i % 1000) || '.example', 'deferred', 1,
                   ?5 + 86400000 + (i * 7919) % 3600000, ?3 + (i - 1) * ?4 + 300000,
                   '451 4.4.1 connect to mx.d' || (i % 1000) || '.example[192.0.2.' || (i % 250 + 1) || ']:25: Connection timed out',
                   'mx.d' || (i % 1000) || '.example[192.0.2.' || (i % 250 + 1) || ']:25'
            FROM c""", args + (now_ms,))
        con.execute("COMMIT")
        if progress:
            progress(hi, time.monotonic() - t0)
    con.execute("PRAGMA journal_mode=WAL")
    con.close()
    return {"depth": depth, "body_bytes": len(body), "fill_s": time.monotonic() - t0, "now_ms": now_ms}


def ro(db_path: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)


def queue_count(db_path: str) -> int:
    with ro(db_path) as db:
        return db.execute("SELECT count(*) FROM message").fetchone()[0]


def check_prefilled(db_path: str, depth: int) -> dict:
    """The pre-filled rows (ids 1..depth) after a run: still deferred, attempts 1, not leased, not due."""
    with ro(db_path) as db:
        r = db.execute("""SELECT count(*), sum(state = 'deferred' AND attempts = 1 AND lease_owner IS NULL),
                                 min(next_attempt_at)
                          FROM recipient WHERE id <= ?""", (depth,)).fetchone()
        m = db.execute("SELECT count(*) FROM message WHERE id <= ?", (depth,)).fetchone()[0]
        total = db.execute("SELECT count(*) FROM message").fetchone()[0]
    return {"recipients": r[0], "untouched": r[1] or 0, "messages": m, "total_messages": total,
            "min_next_attempt_in_h": None if r[2] is None else (r[2] - time.time() * 1000) / 3.6e6,
            "ok": r[0] == depth and (r[1] or 0) == depth and m == depth}


def leftovers(db_path: str, depth: int, limit: int = 20) -> list[str]:
    now = int(time.time() * 1000)
    with ro(db_path) as db:
        rows = db.execute("""SELECT m.queue_id, m.arrived_at, r.state, r.attempts, r.next_attempt_at, r.lease_owner,
                                    r.lease_expires_at, r.last_attempt_at, r.last_reply, m.spool_file
                             FROM message m JOIN recipient r ON r.message_id = m.id WHERE m.id > ?
                             ORDER BY m.id LIMIT ?""", (depth, limit)).fetchall()
    out = []
    for q, arr, st, att, nxt, lo, le, la, rep, sp in rows:
        out.append(f"{q} arrived {(now - arr) / 1000:.1f} s ago, state={st} attempts={att} next_attempt_in="
                   f"{(nxt - now) / 1000:.1f}s lease_owner={lo} lease_expires_in="
                   f"{'-' if le is None else f'{(le - now) / 1000:.0f}s'} last_attempt="
                   f"{'-' if la is None else f'{(now - la) / 1000:.1f}s ago'} last_reply={rep!r} spool={sp}")
    return out


def schema_hash() -> str:
    import hashlib
    h = hashlib.sha256()
    for f in sorted((ROOT / "migrations").glob("*.sql")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:10]


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__)
        return 64
    cmd, db = argv[1], argv[2]
    if cmd == "count":
        print(queue_count(db))
    elif cmd == "waitcount":
        n, deadline = int(argv[3]), time.time() + float(argv[4])
        while True:
            c = queue_count(db)
            if c <= n or time.time() >= deadline:
                print(c)
                return 0 if c == n else 1
            time.sleep(0.2)
    elif cmd == "fill":
        r = fill_queue(db, int(argv[3]), int(argv[4]) if len(argv) > 4 else 4096,
                       progress=lambda n, s: print(f"# {n} messages, {s:.1f} s", file=sys.stderr))
        print(r)
    elif cmd == "leftovers":
        for line in leftovers(db, int(argv[3])):
            print(line)
    elif cmd == "check":
        r = check_prefilled(db, int(argv[3]))
        print(r)
        return 0 if r["ok"] else 1
    else:
        print(__doc__)
        return 64
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
