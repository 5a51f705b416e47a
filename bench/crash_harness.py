#!/usr/bin/env python3
"""Petrel's crash-and-fault harness (issue 6): kill -9 under load, a full disk, slow and hostile clients,
and failing next hops, against the real `petrel serve` on loopback.

    python3 bench/crash_harness.py --rounds 50     # the full run: 50 kills, 1,000 idle connections, ...
    python3 bench/crash_harness.py --quick         # the short form (5 kills, 200 idle connections), as CI runs it
    python3 bench/crash_harness.py --only crash --rounds 100 --seed 42

Scenarios (--only takes a comma-separated subset; default all):
  crash    N rounds: concurrent clients send uniquely numbered messages (number in Subject and body), the
           relay is SIGKILLed at a chosen moment (mid-DATA, right after the final dot, right after a 250,
           while the sink holds a delivery's reply, or at random) and restarted on the same queue. After a
           final restart and a drain: every message that got a 250 reached the sink (zero lost), intact;
           duplicates are counted and attributed to kills (each relay generation EHLOs with its own name).
  disk     the queue on a size-limited tmpfs (else a loop-mounted ext4 image), filled with a ballast file:
           452 4.3.1 at the end of DATA, the server stays up, nothing acknowledged is lost, acceptance
           resumes when the ballast is deleted. The full run tries both filesystem kinds. Skipped, with the
           reason, when nothing can be mounted here.
  hostile  1,000 (quick: 200) idle connections, tricklers (1 byte/s), garbage senders, 10 MB lines, clients
           stalled mid-DATA, while a well-behaved client's latency is measured and the relay's RSS watched.
  dest     next hops that hang after the greeting, reset mid-DATA, or answer 421 at connect: retried,
           never lost, never stuck, delivered once the fault is gone.

Exit status: 0 when every scenario passed (or was skipped, reported as such), 1 when any failed (a lost
message, an unexplained duplicate, a wrong reply, a stuck queue...), 2 on a usage error.

The binary is $PETREL_BIN (default .build/debug/petrel; built with `swift build` if missing). Work files
go to a fresh folder under /tmp (or --workdir), kept when something failed or with --keep. Every process
this starts is stopped by its PID; every mount is undone.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "Tests" / "Interop"))

SCENARIOS = ("crash", "disk", "hostile", "dest")


def ensure_binary() -> str:
    binary = os.environ.get("PETREL_BIN") or str(ROOT / ".build" / "debug" / "petrel")
    if not os.access(binary, os.X_OK):
        if os.environ.get("PETREL_BIN"):
            sys.exit(f"crash_harness: PETREL_BIN={binary} is not an executable")
        print(f"# {binary} is missing: swift build", file=sys.stderr)
        subprocess.run(["swift", "build"], cwd=ROOT, check=True, timeout=3600)
    os.environ["PETREL_BIN"] = binary
    return binary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--quick", action="store_true", help="the short form of every scenario (CI)")
    parser.add_argument("--rounds", type=int, help="crash rounds (kills); default 50, or 5 with --quick")
    parser.add_argument("--clients", type=int, default=6, help="concurrent load clients in the crash rounds (6)")
    parser.add_argument("--idle", type=int, help="idle connections in the hostile scenario (1000; quick 200)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help=f"subset of {','.join(SCENARIOS)}")
    parser.add_argument("--seed", type=int, help="random seed of the crash scenario (default: random, printed)")
    parser.add_argument("--workdir", type=Path, help="where the work folders go (default: a new one under /tmp)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder even when everything passed")
    args = parser.parse_args(argv)

    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in only if name not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; choose from {','.join(SCENARIOS)}")
    rounds = args.rounds if args.rounds is not None else (5 if args.quick else 50)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    idle = args.idle if args.idle is not None else (200 if args.quick else 1000)

    source = ensure_binary()
    work = Path(tempfile.mkdtemp(prefix="petrel-faults-", dir=args.workdir))
    # A private copy: a concurrent `swift build` may relink the original in the middle of a long run, and
    # every round must run the same code.
    binary = str(work / "petrel")
    shutil.copy2(source, binary)
    os.environ["PETREL_BIN"] = binary
    import fault_harness as harness  # after PETREL_BIN is settled: conftest reads it at import

    def log(text: str) -> None:
        print(f"# {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)

    log(f"binary {source} (built {time.ctime(os.path.getmtime(source))}, copied to {binary}); work folder {work}")
    results = []
    started = time.monotonic()
    for name in only:
        began = time.monotonic()
        folder = work / name
        folder.mkdir(parents=True, exist_ok=True)
        log(f"--- {name}")
        try:
            if name == "crash":
                drain = 40.0 if args.quick else 120.0
                results.append(harness.run_crash(folder, rounds=rounds, clients=args.clients, seed=args.seed,
                                                 drain_timeout=drain, log=log))
            elif name == "disk":
                kinds = ("tmpfs", "ext4")
                if args.quick:
                    results.append(harness.run_disk_full(folder, kinds=kinds, log=log))
                else:
                    # The full run tries each kind on its own (each may be refused here independently).
                    for kind in kinds:
                        results.append(harness.run_disk_full(folder / kind, kinds=(kind,), log=log))
            elif name == "hostile":
                results.append(harness.run_hostile_clients(
                    folder, idle=idle, garbage=5 if args.quick else 20, measure_seconds=5.0 if args.quick else 10.0,
                    command_timeout=10 if args.quick else 25, per_client=20, log=log))
            elif name == "dest":
                results.append(harness.run_destination_faults(folder, log=log))
        except Exception as error:  # noqa: BLE001 - a harness error is a failed scenario, reported with the rest
            import traceback
            failed = harness.Result(f"{name}: harness error")
            failed.fail(f"{type(error).__name__}: {error}\n{traceback.format_exc()}")
            results.append(failed)
        log(f"--- {name} done in {time.monotonic() - began:.1f}s")

    print()
    print(f"Petrel crash-and-fault harness, {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
          f"{platform.node()} ({os.cpu_count()} CPUs), {'quick' if args.quick else 'full'} run, "
          f"{time.monotonic() - started:.0f} s")
    print(f"binary: {source} (modified {time.ctime(os.path.getmtime(binary))})")
    print(f"command: python3 bench/crash_harness.py {' '.join(argv if argv is not None else sys.argv[1:])}")
    print()
    for result in results:
        print(result.table())
        print()
    print("Summary")
    for result in results:
        print(f"  {result.status:8} {result.name}")
    failed = [r for r in results if r.skipped is None and not r.ok]
    if failed or args.keep:
        print(f"\nwork folder kept: {work} (relay logs: */relay/petrel.log)")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
