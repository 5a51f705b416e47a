#!/usr/bin/env python3
# Measures how message bodies should be stored: inline BLOBs in the queue database (one fsync per
# transaction covers the batch) versus one spool file per message (file fsync + directory fsync, then
# the row). SQLite in WAL mode with synchronous=FULL, as the queue runs. Results: docs/ARCHITECTURE.md.
import os, sqlite3, time, tempfile, statistics
d = tempfile.mkdtemp(dir="/var/tmp")
def inline(n, batch, size):
    db = sqlite3.connect(os.path.join(d, f"q{size}.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, body BLOB)")
    blob = os.urandom(size)
    t = time.perf_counter()
    for i in range(0, n, batch):
        db.execute("BEGIN")
        for _ in range(batch): db.execute("INSERT INTO m (body) VALUES (?)", (blob,))
        db.execute("COMMIT")
    return n / (time.perf_counter() - t)
def spool(n, batch, size):
    db = sqlite3.connect(os.path.join(d, f"s{size}.db"), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS m (id INTEGER PRIMARY KEY, path TEXT)")
    sd = tempfile.mkdtemp(dir=d)
    blob = os.urandom(size); t = time.perf_counter(); k = 0
    for i in range(0, n, batch):
        names = []
        for _ in range(batch):
            k += 1; p = os.path.join(sd, str(k))
            fd = os.open(p, os.O_WRONLY|os.O_CREAT|os.O_EXCL, 0o600); os.write(fd, blob); os.fsync(fd); os.close(fd); names.append(p)
        dfd = os.open(sd, os.O_RDONLY); os.fsync(dfd); os.close(dfd)
        db.execute("BEGIN")
        for p in names: db.execute("INSERT INTO m (path) VALUES (?)", (p,))
        db.execute("COMMIT")
    return n / (time.perf_counter() - t)
for size in (4096, 65536, 1048576):
    n = 2000 if size < 1e6 else 200
    for batch in (1, 10):
        a = statistics.median([inline(n, batch, size) for _ in range(3)])
        b = statistics.median([spool(n, batch, size) for _ in range(3)])
        print(f"size={size:>8} batch={batch:>2}  inline {a:8.0f} msg/s   spool {b:8.0f} msg/s")
