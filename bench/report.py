#!/usr/bin/env python3
"""Turns the output of the shared harness (ceiling.sh, postfix.sh, relay.sh) into Markdown tables.

    bench/report.py OUTFILE...      # prints a Markdown fragment on stdout

Each OUTFILE holds what one harness script printed (stdout and stderr together). Only two kinds of
lines are read:

  run  LABEL MSGS SESS ACCEPT E2E key=value ... vda:writes/msg=..,KB/msg=..,flushes/msg=.. cpu%:usr=..,...
  case LABEL MSGS SESS ACCEPT E2E accept[min..max]=a..b e2e[min..max]=c..d ok_runs=n/m [mem:...] [cpu_total_s=..]

LABEL is SYSTEM-MODE (ceiling-conn1, postfix-persist, petrel-conn1, ...). Used by bench/run; no
third-party modules.
"""
import re
import statistics
import sys

NCPU = None


def ncpu():
    global NCPU
    if NCPU is None:
        import os
        NCPU = os.cpu_count() or 1
    return NCPU


def num(s):
    try:
        v = float(s)
        return None if v != v else v  # nan -> None
    except (TypeError, ValueError):
        return None


def kv(tokens):
    """key=value pairs from the tail of a line, also inside 'prefix:k=v,k=v' groups."""
    out = {}
    for t in tokens:
        if ":" in t and "=" in t and t.index(":") < t.index("="):
            prefix, rest = t.split(":", 1)
            for part in rest.split(","):
                if "=" in part:
                    k, v = part.split("=", 1)
                    out[f"{prefix}:{k}"] = v
        elif "=" in t:
            k, v = t.split("=", 1)
            out[k] = v
    return out


def parse(paths):
    runs, cases = {}, {}
    for path in paths:
        with open(path, errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 6 or parts[0] not in ("run", "case"):
                    continue
                label, msgs, sess = parts[1], parts[2], parts[3]
                if not msgs.isdigit() or not sess.isdigit():
                    continue
                system, _, mode = label.rpartition("-")
                key = (system, mode, int(sess))
                rec = {"msgs": int(msgs), "accept": num(parts[4]), "e2e": num(parts[5])}
                rec.update(kv(parts[6:]))
                if parts[0] == "run":
                    runs.setdefault(key, []).append(rec)
                else:
                    cases[key] = rec
    return runs, cases


def median(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, digits=0):
    if v is None:
        return "—"
    return f"{v:,.{digits}f}"


def rng(rec, what):
    r = rec.get(f"{what}[min..max]")
    if not r or "nan" in r:
        return ""
    lo, _, hi = r.partition("..")
    try:
        return f" [{float(lo):,.0f}..{float(hi):,.0f}]"
    except ValueError:
        return ""


def summarize(runs, cases):
    rows = {}
    for key in sorted(set(runs) | set(cases)):
        rs = runs.get(key, [])
        c = cases.get(key, {})
        flushes = median([num(next((v for k, v in r.items() if k.endswith(":flushes/msg")), None)) for r in rs])
        writes_kb = median([num(next((v for k, v in r.items() if k.endswith(":KB/msg")), None)) for r in rs])
        # whole-machine CPU per message (relay + smtp-source + smtp-sink + anything else running), from the
        # run's busy share of all cores over the e2e time
        mcpu = []
        for r in rs:
            idle, iow = num(r.get("cpu%:idle")), num(r.get("cpu%:iowait"))
            if r["e2e"] and idle is not None and iow is not None:
                mcpu.append((100 - idle - iow) / 100 * ncpu() * 1000 / r["e2e"])
        ok = c.get("ok_runs", f"{sum(1 for r in rs if r['e2e'] is not None)}/{len(rs)}")
        ok_n = int(ok.split("/")[0]) if ok.split("/")[0].isdigit() else 0
        msgs = c.get("msgs") or (rs[0]["msgs"] if rs else None)
        tree_cpu = num(c.get("cpu_total_s"))
        # the sampler runs over the whole case (REPS runs, including failed ones)
        nruns = len(rs) or ok_n
        cpu_ms = tree_cpu * 1000 / (msgs * nruns) if tree_cpu is not None and msgs and nruns else None
        rss = c.get("mem:sum_rss")
        pss = c.get("mem:sum_pss")
        procs = c.get("mem:procs")
        rows[key] = {
            "accept": c.get("accept", median([r["accept"] for r in rs])),
            "e2e": c.get("e2e", median([r["e2e"] for r in rs])),
            "accept_rng": rng(c, "accept"), "e2e_rng": rng(c, "e2e"),
            "ok": ok, "msgs": msgs, "flushes": flushes, "kb": writes_kb, "mcpu": median(mcpu),
            "cpu_ms": cpu_ms, "rss": rss, "pss": pss, "procs": procs,
            "overflows": sum(int(r.get("tcp:listen_overflows", 0) or 0) for r in rs),
            "load": median([num(r.get("load1_before")) for r in rs]),
        }
    return rows


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "—"
    return f"{a / b:.2f}"


def main(paths):
    runs, cases = parse(paths)
    rows = summarize(runs, cases)
    systems = [s for s in ("ceiling", "postfix", "petrel") if any(k[0] == s for k in rows)]
    systems += sorted({k[0] for k in rows} - set(systems))
    modes = [m for m in ("conn1", "persist", "rcpt10") if any(k[1] == m for k in rows)]
    sessions = sorted({k[2] for k in rows})

    print("| mode | sess | ceiling | Postfix accept | Postfix e2e | Petrel accept | Petrel e2e "
          "| Petrel/Postfix accept | Petrel/Postfix e2e | Petrel/ceiling accept | Petrel/ceiling e2e |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in modes:
        for s in sessions:
            c, p, r = rows.get(("ceiling", m, s)), rows.get(("postfix", m, s)), rows.get(("petrel", m, s))
            if not (c or p or r):
                continue
            g = lambda row, k: row[k] if row else None
            cell = lambda row, k: (fmt(row[k]) + row[k + "_rng"]) if row and row[k] is not None else ("failed" if row else "not run")
            print(f"| {m} | {s} | {cell(c, 'e2e')} | {cell(p, 'accept')} | {cell(p, 'e2e')} | {cell(r, 'accept')} "
                  f"| {cell(r, 'e2e')} | {ratio(g(r, 'accept'), g(p, 'accept'))} | {ratio(g(r, 'e2e'), g(p, 'e2e'))} "
                  f"| {ratio(g(r, 'accept'), g(c, 'e2e'))} | {ratio(g(r, 'e2e'), g(c, 'e2e'))} |")
    print()
    print("Rates in messages/s: median of the repetitions [min..max]. For the ceiling (no relay) accept and e2e "
          "are the same event, so one number is shown.")
    print()
    print("| system | case | sess | ok runs | relay CPU ms/msg | whole-machine CPU ms/msg | peak RSS (sum) | peak PSS (sum) "
          "| procs | disk flushes/msg | disk KB/msg | listen overflows | load1 before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for sy in systems:
        for m in modes:
            for s in sessions:
                row = rows.get((sy, m, s))
                if not row:
                    continue
                print(f"| {sy} | {m} | {s} | {row['ok']} | {fmt(row['cpu_ms'], 2)} | {fmt(row['mcpu'], 2)} "
                      f"| {row['rss'] or '—'} | {row['pss'] or '—'} | {row['procs'] or '—'} | {fmt(row['flushes'], 2)} "
                      f"| {fmt(row['kb'], 1)} | {row['overflows']} | {fmt(row['load'], 2)} |")
    print()
    print("Relay CPU = user+system CPU of the relay's process tree over the whole case (all repetitions, "
          "including the harness's 3 s pauses) divided by the messages sent; Postfix's short-lived processes "
          "are counted through the master's reaped-children time. Whole-machine CPU = the busy share of all "
          f"{ncpu()} cores during a run (load generator, sink and anything else running included) times the "
          "e2e time, per message. Flushes and KB are the whole disk's, so other work on the machine counts too.")


if __name__ == "__main__":
    main(sys.argv[1:])
