"""A real DNS server for the delivery tests: dnsmasq on a free loopback port, serving the records a test
describes (the Python twin of `Tests/PetrelTestSupport/DNSTestServer.swift`, with the same flags).

    dns = DnsmasqServer(folder, [mx("dest.test", "mx.dest.test", 10), a("mx.dest.test", "127.0.0.3")])
    dns.start()
    ...                       # give dns.address ("127.0.0.1:PORT") to petrel's delivery.dns_servers
    dns.stop()

What it answers:
- the described records, with TTL `ttl`;
- names under "test" (and every record's top-level domain) are local: a name with no record at all is
  NXDOMAIN, a name with records but none of the asked type is NODATA;
- names under a `servfail(domain)` are forwarded to a closed port, so the query times out (a temporary
  failure, like SERVFAIL);
- names outside the local domains are REFUSED (there is no upstream server).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


def find_dnsmasq() -> Optional[str]:
    for candidate in ("/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("dnsmasq")


# ---------------------------------------------------------------------------------------------------
# Records: each is the dnsmasq option that publishes it (the servfail one is completed at start).


def mx(domain: str, exchange: str, preference: int = 10) -> str:
    """An MX record (RFC 1035 §3.3.9)."""
    return f"--mx-host={domain.rstrip('.')},{exchange.rstrip('.')},{preference}"


def a(host: str, address: str) -> str:
    """An A (or, with an IPv6 address, AAAA) record."""
    return f"--host-record={host.rstrip('.')},{address}"


def null_mx(domain: str) -> str:
    """A null MX, "MX 0 ." (RFC 7505): raw MX RDATA, preference 0 and the root name."""
    return f"--dns-rr={domain.rstrip('.')},15,000000"


def servfail(domain: str) -> str:
    """`domain` and every name under it time out (forwarded to a closed port)."""
    return f"--server=/{domain.rstrip('.')}/127.0.0.1#CLOSED_PORT"


def _record_name(option: str) -> Optional[str]:
    if option.startswith("--server="):
        return None
    value = option.split("=", 1)[1]
    return value.split(",", 1)[0]


# ---------------------------------------------------------------------------------------------------
# Ports


def _free_udp_and_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
            finally:
                tcp.close()
        finally:
            udp.close()
    raise RuntimeError("found no free loopback port for dnsmasq")


def _query_packet(name: str, qtype: int = 1) -> tuple:
    ident = random.randrange(0, 65536)
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        packet += bytes([len(label)]) + label.encode("ascii")
    packet += b"\x00" + struct.pack("!HH", qtype, 1)
    return ident, packet


def query(port: int, name: str, qtype: int = 1, timeout: float = 1.0) -> Optional[tuple]:
    """One UDP query to 127.0.0.1:port: (rcode, answer count), or None without an answer in time."""
    ident, packet = _query_packet(name, qtype)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(packet, ("127.0.0.1", port))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                reply = sock.recv(4096)
                if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == ident:
                    flags, _, answers = struct.unpack("!HHH", reply[2:8])
                    return flags & 0x000F, answers
        except OSError:  # a timeout, or ECONNREFUSED from the ICMP of a port nobody listens on yet
            return None
    return None


# ---------------------------------------------------------------------------------------------------
# The server


class DnsmasqServer:
    def __init__(self, folder: Path, records: Iterable[str], ttl: int = 300, local_domains: Iterable[str] = ("test",)):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.records = list(records)
        self.ttl = ttl
        self.local_domains = set(local_domains)
        for record in self.records:
            name = _record_name(record)
            if name:
                self.local_domains.add(name.rsplit(".", 1)[-1].lower())
        self.log_path = self.folder / "dnsmasq.log"
        self.port: Optional[int] = None
        self.process: Optional[subprocess.Popen] = None
        self._log_file = None

    @property
    def address(self) -> str:
        """"127.0.0.1:PORT", for petrel's `delivery.dns_servers`."""
        return f"127.0.0.1:{self.port}"

    def arguments(self, port: int, closed_port: int) -> list:
        arguments = [
            "--no-daemon",
            f"--port={port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--conf-file=/dev/null",
            "--pid-file=",
            "--log-facility=-",
            "--log-queries",
            f"--local-ttl={self.ttl}",
        ]
        arguments += [record.replace("CLOSED_PORT", str(closed_port)) for record in self.records]
        arguments += [f"--local=/{domain}/" for domain in sorted(self.local_domains) if domain]
        return arguments

    def start(self) -> "DnsmasqServer":
        executable = find_dnsmasq()
        if executable is None:
            raise RuntimeError("dnsmasq not found (install it with scripts/install-test-deps)")
        last_output = ""
        for _ in range(5):
            port = _free_udp_and_tcp_port()
            closed_port = _free_udp_and_tcp_port()
            self._log_file = open(self.log_path, "ab")
            self.process = subprocess.Popen(
                [executable, *self.arguments(port, closed_port)],
                stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=self._log_file,
            )
            self.port = port
            if self._wait_ready():
                return self
            last_output = self.log_text()
            self.stop()
            if "in use" not in last_output:
                break
        raise RuntimeError(f"dnsmasq did not answer: {last_output}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and self.process.poll() is None:
            if query(self.port, "ready.petrel.test", timeout=0.1) is not None:
                return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
