"""A `250 ... queued as ID` is a promise: the message survives a SIGKILL that comes right after it."""

import threading

from conftest import ConnectionClosed, SMTPConversation, queue_id_of, simple_message


def send_and_kill(server, text):
    """Sends one message; SIGKILLs the server the moment the 250 arrives. Returns the queue id."""
    with SMTPConversation(server.address) as smtp:
        smtp.ehlo()
        smtp.expect("MAIL FROM:<durable@example.org>", 250)
        smtp.expect("RCPT TO:<r@example.com>", 250)
        smtp.expect("DATA", 354)
        reply = smtp.finish_data(text)
        server.kill()
    assert reply.code == 250, str(reply)
    return queue_id_of(reply)


def test_acknowledged_message_survives_sigkill(petrel_server):
    server = petrel_server()
    text = simple_message("durable", "Must not be lost.\r\n")
    queue_id = send_and_kill(server, text)

    server.restart()
    result = server.cli("queue", "show", queue_id)
    assert result.returncode == 0, result.stderr
    assert queue_id in result.stdout
    assert server.stored_parts(queue_id)[1] == text


def test_acknowledged_spooled_message_survives_sigkill(petrel_server):
    server = petrel_server()
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    text = simple_message("big and durable").rstrip(b"\r\n") + b"\r\n\r\n" + line * 6000  # ~440 KB: spooled
    queue_id = send_and_kill(server, text)

    server.restart()  # start-up removes orphaned spool files; this one is not an orphan
    assert server.cli("queue", "show", queue_id).returncode == 0
    assert server.message_row(queue_id)["spool_file"] is not None
    assert server.stored_parts(queue_id)[1] == text


def test_concurrent_acknowledged_messages_survive_sigkill(petrel_server):
    """Eight clients send at once (two of them spooled messages); the server is SIGKILLed as soon as
    half of them have their 250. Every message that got a 250 must be in the queue after a restart."""
    server = petrel_server()
    count = 8
    big_body = b"x" * 100 + b"\r\n"
    acknowledged = {}
    lock = threading.Lock()
    half_acknowledged = threading.Event()

    def client(index):
        text = simple_message(f"concurrent {index}")
        if index % 4 == 0:
            text += big_body * 3000  # ~300 KB: spooled
        try:
            with SMTPConversation(server.address) as smtp:
                smtp.ehlo()
                smtp.expect(f"MAIL FROM:<c{index}@example.org>", 250)
                smtp.expect(f"RCPT TO:<r{index}@example.com>", 250)
                smtp.expect("DATA", 354)
                reply = smtp.finish_data(text)
                if reply.code == 250:
                    with lock:
                        acknowledged[queue_id_of(reply)] = text
                        if len(acknowledged) >= count // 2:
                            half_acknowledged.set()
        except (OSError, ConnectionClosed):
            pass  # cut off by the kill: never acknowledged, so nothing was promised

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    assert half_acknowledged.wait(timeout=30), "no 250s arrived"
    server.kill()
    for thread in threads:
        thread.join(timeout=15)

    with lock:
        promised = dict(acknowledged)
    assert len(promised) >= count // 2
    server.restart()
    for queue_id, text in promised.items():
        assert server.cli("queue", "show", queue_id).returncode == 0, f"{queue_id} was acknowledged, then lost"
        assert server.stored_parts(queue_id)[1] == text


def test_queue_database_is_in_wal_mode(default_server):
    with SMTPConversation(default_server.address) as smtp:
        smtp.ehlo()
        smtp.send_mail("a@example.org", ["r@example.com"], simple_message())
    with default_server.db() as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    assert default_server.queue_path.with_name(default_server.queue_path.name + "-wal").exists()


def test_queue_path_is_relative_to_the_config_folder(default_server):
    # The server runs with / as its working directory; the queue must be beside the config file.
    assert default_server.queue_path == default_server.folder / "data" / "queue.sqlite"
    assert default_server.queue_path.exists()
    assert default_server.spool_dir.is_dir()
