"""A scriptable destination SMTP server for the delivery tests: the MX host, smarthost or route that
petrel delivers to.

    sink = SMTPSink("127.0.0.3", port, name="mx.dest.test").start()
    sink.rcpt_reply = lambda address, attempt: "550 5.1.1 No such user" if address.startswith("bob@") else None
    ...
    sink.wait_for_messages(1, timeout=10)
    sink.stop()

It advertises PIPELINING, 8BITMIME, DSN, SIZE and ENHANCEDSTATUSCODES, answers pipelined commands in
order, dot-unstuffs DATA and records every message (envelope and text). One thread per connection; every
read is bounded, and `stop()` closes every socket and joins every thread.

The script, as attributes (they may be changed while it runs; the next command sees the new value):
- `greeting`: the greeting line, e.g. "421 4.3.2 Busy" (then the connection is closed, RFC 5321 §3.8);
- `hang_after_greeting`: greet, then never answer anything (reads and ignores until the peer goes away);
- `mail_reply(sender) -> str | None`, `rcpt_reply(address, attempt) -> str | None` (`attempt` counts the
  RCPTs of that address this sink has seen, from 1), `data_reply(message) -> str | None`: `None` means
  the normal 250;
- `advertise_8bitmime` (default True), `advertise_smtputf8` (default False): whether EHLO offers
  8BITMIME and SMTPUTF8, for the relay's conversions (RFC 6152 §3, RFC 6531 §3.4);
- `reset_mid_data`: after 354 and the first bytes of the text, reset the connection (RST);
- `hold_data_reply`: a `threading.Event`; once the whole text is in, the reply to it waits until the
  event is set (at most `hold_timeout` seconds). `held` counts the texts received so far.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

READ_POLL = 0.2          # how often a blocked read looks at the stop flag
IDLE_TIMEOUT = 60.0      # a connection silent this long is closed
MAX_SIZE = 50 * 1024 * 1024


@dataclass
class SinkMessage:
    """One message as the sink received it."""
    mail_from: str
    mail_params: list
    recipients: list
    rcpt_params: dict
    data: bytes                      # dot-unstuffed, CRLF line endings, without the final "."
    helo: str
    peer: tuple
    connection: int                  # which connection (1, 2, ...) carried it
    reply: str = ""

    def parsed(self) -> email.message.Message:
        return email.message_from_bytes(self.data, policy=email.policy.compat32)

    def header(self, name: str) -> Optional[str]:
        return self.parsed().get(name)


@dataclass
class Command:
    """One command line as received, for assertions on the conversation."""
    connection: int
    line: str
    at: float = field(default_factory=time.monotonic)


class SMTPSink:
    def __init__(self, host: str, port: int, name: str = "sink.test"):
        self.host = host
        self.port = port
        self.name = name
        # -- the script
        self.greeting: str = f"220 {name} ESMTP sink"
        self.hang_after_greeting = False
        self.mail_reply: Optional[Callable[[str], Optional[str]]] = None
        self.rcpt_reply: Optional[Callable[[str, int], Optional[str]]] = None
        self.data_reply: Optional[Callable[[SinkMessage], Optional[str]]] = None
        self.advertise_8bitmime = True
        self.advertise_smtputf8 = False
        self.reset_mid_data = False
        self.hold_data_reply: Optional[threading.Event] = None
        self.hold_timeout = 30.0
        # -- what happened
        self.messages: list = []         # messages answered with 2xx to the final "."
        self.refused: list = []          # messages answered otherwise (or whose peer was gone)
        self.commands: list = []
        self.connections = 0
        self.held = 0                    # texts that were complete when their reply was held
        self.resets = 0
        self.rcpt_attempts: dict = {}
        # -- machinery
        self._condition = threading.Condition()
        self._stopping = threading.Event()
        self._listener: Optional[socket.socket] = None
        self._accept_thread: Optional[threading.Thread] = None
        self._threads: list = []
        self._sockets: set = set()
        self._ids = itertools.count(1)

    # -- life cycle

    def start(self) -> "SMTPSink":
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
        except OSError:
            listener.close()
            raise
        listener.listen(64)
        listener.settimeout(READ_POLL)
        self._listener = listener
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"sink-{self.name}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self.hold_data_reply is not None:
            self.hold_data_reply.set()
        if self._listener is not None:
            self._listener.close()
        if self._accept_thread is not None:
            self._accept_thread.join(timeout=5)
        with self._condition:
            sockets = list(self._sockets)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in list(self._threads):
            thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- waiting for what happened

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"sink {self.name} ({self.host}:{self.port}): no {what} within {timeout}s; "
                        f"{len(self.messages)} messages, {self.connections} connections, "
                        f"commands: {[c.line for c in self.commands][-20:]}"
                    )
                self._condition.wait(min(remaining, 0.2))

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> list:
        self.wait_for(lambda: len(self.messages) >= count, timeout, f"{count} messages")
        with self._condition:
            return list(self.messages)

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        self.wait_for(lambda: self.connections >= count, timeout, f"{count} connections")

    def snapshot(self) -> list:
        with self._condition:
            return list(self.messages)

    def _record(self, action: Callable[[], None]) -> None:
        with self._condition:
            action()
            self._condition.notify_all()

    # -- serving

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            number = next(self._ids)
            with self._condition:
                self.connections += 1
                self._sockets.add(sock)
                self._condition.notify_all()
            thread = threading.Thread(target=self._serve, args=(sock, peer, number), daemon=True,
                                      name=f"sink-{self.name}-{number}")
            self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, peer: tuple, number: int) -> None:
        connection = _Connection(self, sock, peer, number)
        try:
            connection.run()
        except (OSError, _Closed):
            pass
        finally:
            with self._condition:
                self._sockets.discard(sock)
                self._condition.notify_all()
            try:
                sock.close()
            except OSError:
                pass


class _Closed(Exception):
    pass


class _Connection:
    def __init__(self, sink: SMTPSink, sock: socket.socket, peer: tuple, number: int):
        self.sink = sink
        self.sock = sock
        self.peer = peer
        self.number = number
        self.buffer = b""
        self.helo = ""
        self.reset_transaction()
        sock.settimeout(READ_POLL)

    def reset_transaction(self) -> None:
        self.mail_from: Optional[str] = None
        self.mail_params: list = []
        self.recipients: list = []
        self.rcpt_params: dict = {}

    # -- I/O

    def send(self, line: str) -> None:
        self.sock.sendall(line.encode("utf-8") + b"\r\n")

    def _fill(self) -> None:
        idle_deadline = time.monotonic() + IDLE_TIMEOUT
        while True:
            if self.sink._stopping.is_set():
                raise _Closed()
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                if time.monotonic() > idle_deadline:
                    raise _Closed()
                continue
            if not chunk:
                raise _Closed()
            self.buffer += chunk
            return

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            if len(self.buffer) > 1_000_000:
                raise _Closed()
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def peer_gone(self) -> bool:
        """Whether the client has closed or reset the connection (checked without consuming input)."""
        try:
            self.sock.settimeout(0.0)
            data = self.sock.recv(1, socket.MSG_PEEK)
            return data == b""
        except (BlockingIOError, socket.timeout):
            return False
        except OSError:
            return True
        finally:
            self.sock.settimeout(READ_POLL)

    def reset_connection(self) -> None:
        """Closes with RST (SO_LINGER 0) instead of FIN."""
        self.sink._record(lambda: setattr(self.sink, "resets", self.sink.resets + 1))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        raise _Closed()

    # -- the conversation

    def run(self) -> None:
        sink = self.sink
        greeting = sink.greeting
        self.send(greeting)
        if not greeting.startswith("2"):
            return  # 421 and the like: close (RFC 5321 §3.8)
        while True:
            line = self.read_line().decode("utf-8", errors="replace")
            sink._record(lambda: sink.commands.append(Command(self.number, line)))
            if sink.hang_after_greeting:
                continue
            verb = line.split(" ", 1)[0].upper()
            argument = line[len(verb):].strip()
            if verb == "EHLO":
                self.helo = argument
                self.reset_transaction()
                extensions = [sink.name, "PIPELINING", "8BITMIME", "DSN", f"SIZE {MAX_SIZE}", "SMTPUTF8"]
                if not sink.advertise_8bitmime:
                    extensions.remove("8BITMIME")
                if not sink.advertise_smtputf8:
                    extensions.remove("SMTPUTF8")
                for extension in extensions:
                    self.send(f"250-{extension}")
                self.send("250 ENHANCEDSTATUSCODES")
            elif verb == "HELO":
                self.helo = argument
                self.reset_transaction()
                self.send(f"250 {sink.name}")
            elif verb == "MAIL":
                self.mail(argument)
            elif verb == "RCPT":
                self.rcpt(argument)
            elif verb == "DATA":
                self.data()
            elif verb == "RSET":
                self.reset_transaction()
                self.send("250 2.0.0 Ok")
            elif verb == "NOOP":
                self.send("250 2.0.0 Ok")
            elif verb == "QUIT":
                self.send("221 2.0.0 Bye")
                return
            else:
                self.send("502 5.5.2 Command not implemented")

    def mail(self, argument: str) -> None:
        match = re.match(r"(?i)FROM:\s*<([^>]*)>\s*(.*)$", argument)
        if not match or not self.helo:
            self.send("501 5.5.4 Syntax: MAIL FROM:<address>" if match is None else "503 5.5.1 EHLO first")
            return
        if self.mail_from is not None:
            self.send("503 5.5.1 Nested MAIL command")
            return
        sender, params = match.group(1), match.group(2).split()
        reply = self.sink.mail_reply(sender) if self.sink.mail_reply else None
        reply = reply or "250 2.1.0 Ok"
        if reply.startswith("2"):
            self.mail_from, self.mail_params = sender, params
        self.send(reply)

    def rcpt(self, argument: str) -> None:
        match = re.match(r"(?i)TO:\s*<([^>]*)>\s*(.*)$", argument)
        if not match:
            self.send("501 5.5.4 Syntax: RCPT TO:<address>")
            return
        if self.mail_from is None:
            self.send("503 5.5.1 MAIL first")
            return
        address, params = match.group(1), match.group(2).split()
        sink = self.sink
        with sink._condition:
            attempt = sink.rcpt_attempts.get(address.lower(), 0) + 1
            sink.rcpt_attempts[address.lower()] = attempt
        reply = sink.rcpt_reply(address, attempt) if sink.rcpt_reply else None
        reply = reply or "250 2.1.5 Ok"
        if reply.startswith("2"):
            self.recipients.append(address)
            self.rcpt_params[address] = params
        self.send(reply)

    def data(self) -> None:
        if self.mail_from is None or not self.recipients:
            # RFC 2920 §3.1: a pipelined DATA after refused recipients gets 554 (no text follows).
            self.send("554 5.5.1 No valid recipients" if self.mail_from is not None else "503 5.5.1 MAIL first")
            return
        sink = self.sink
        self.send("354 End data with <CR><LF>.<CR><LF>")
        if sink.reset_mid_data:
            if not self.buffer:
                self._fill()
            self.reset_connection()
        lines = []
        size = 0
        while True:
            line = self.read_line()
            if line == b".":
                break
            if line.startswith(b"."):
                line = line[1:]
            size += len(line) + 2
            if size > MAX_SIZE:
                raise _Closed()
            lines.append(line)
        text = b"".join(line + b"\r\n" for line in lines)
        message = SinkMessage(
            mail_from=self.mail_from, mail_params=self.mail_params, recipients=list(self.recipients),
            rcpt_params=dict(self.rcpt_params), data=text, helo=self.helo, peer=self.peer, connection=self.number,
        )
        self.reset_transaction()
        hold = sink.hold_data_reply
        if hold is not None and not hold.is_set():
            sink._record(lambda: setattr(sink, "held", sink.held + 1))
            hold.wait(timeout=sink.hold_timeout)
            if sink._stopping.is_set():
                raise _Closed()
        reply = sink.data_reply(message) if sink.data_reply else None
        reply = reply or f"250 2.0.0 Ok: queued as S{self.number}"
        message.reply = reply
        if reply.startswith("2") and self.peer_gone():
            # The client went away while the reply was held: it never learnt of this delivery.
            message.reply = "(client gone) " + reply
            sink._record(lambda: sink.refused.append(message))
            raise _Closed()
        self.send(reply)
        target = sink.messages if reply.startswith("2") else sink.refused
        sink._record(lambda: target.append(message))
