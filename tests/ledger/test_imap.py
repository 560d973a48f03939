"""Reading bounces from IMAP into the ledger, against a private Dovecot on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from bouncewise.ledger import imap
from bouncewise.ledger.config import ImapSettings, LedgerConfig
from bouncewise.ledger.imap import ImapError, ingest_imap
from bouncewise.ledger.intake import Intake
from bouncewise.ledger.store import Ledger, LedgerUnavailable
from bounces import USER_UNKNOWN, postfix_dsn
from dovecot import PASSWORD, USER, Dovecot, dovecot, start_dovecot  # noqa: F401
from ledgerrun import POSTGRES_SERVER, config_for, database_url, sqlite_url  # noqa: F401

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEYWORD = "$Bouncewise"

# Seconds a test waits for the server or the follow loop before it fails. Only a bound
# against hanging: a pass over two messages takes well under a second.
WAIT_DEADLINE = 30.0


def _fixture(name: str) -> bytes:
    # IMAP transfers messages with CRLF line ends (RFC 3501, section 2.2).
    return (FIXTURES / name).read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


USER_UNKNOWN_BOUNCE = _fixture("postfix-user-unknown.eml")
SPAM_BOUNCE = _fixture("postfix-spam-refused.eml")
GONE = "gone.reader@example.org"
CAREFUL = "careful.reader@example.net"


def _setup(url: str, server: Dovecot, ledger_table: dict[str, object] | None = None,
           imap_table: dict[str, object] | None = None) -> tuple[Ledger, Intake, ImapSettings]:
    config: LedgerConfig = config_for(url, ledger=ledger_table or {},
                                      imap=server.imap_table(**(imap_table or {})))
    ledger = Ledger(config)
    return ledger, Intake(ledger, config), config.imap


def _run_once(url: str, server: Dovecot, **imap_table: object) -> Intake:
    """Ingest the mailbox once with a fresh ledger connection and return the intake."""
    ledger, intake, settings = _setup(url, server, imap_table=imap_table)
    try:
        ingest_imap(intake, settings)
    finally:
        ledger.close()
    return intake


def _categories(url: str, address: str) -> list[str]:
    ledger = Ledger(config_for(url))
    try:
        _, events = ledger.status(address)
    finally:
        ledger.close()
    return [event.category for event in events]


def _wait_for(condition: Callable[[], bool], description: str) -> None:
    deadline = time.monotonic() + WAIT_DEADLINE
    while not condition():
        assert time.monotonic() < deadline, (f"gave up waiting after {WAIT_DEADLINE} s: "
                                             f"{description}")
        time.sleep(0.05)


# Reading, marking and moving.


def test_records_and_sets_keyword(database_url, dovecot):
    dovecot.append(USER_UNKNOWN_BOUNCE)
    dovecot.append(SPAM_BOUNCE)

    intake = _run_once(database_url, dovecot)

    assert intake.stats.messages == 2
    assert intake.stats.events == 2
    assert _categories(database_url, GONE) == ["bad-address"]
    assert _categories(database_url, CAREFUL) == ["spam-block"]
    flags = dovecot.flags()
    assert sorted(flags) == [1, 2]
    assert all(KEYWORD in message_flags for message_flags in flags.values())
    # BODY.PEEK[] leaves \Seen alone, so a mail client still shows the messages as unread.
    assert not any("\\Seen" in message_flags for message_flags in flags.values())


def test_second_run_reads_nothing(database_url, dovecot):
    dovecot.append(USER_UNKNOWN_BOUNCE)
    dovecot.append(SPAM_BOUNCE)
    _run_once(database_url, dovecot)

    again = _run_once(database_url, dovecot)

    assert again.stats.messages == 0
    assert again.stats.duplicates == 0
    assert _categories(database_url, GONE) == ["bad-address"]
    assert sorted(dovecot.flags()) == [1, 2]


def test_empty_mailbox(tmp_path, dovecot):
    intake = _run_once(sqlite_url(tmp_path), dovecot)

    assert intake.stats.messages == 0


def test_move_to_creates_and_moves(tmp_path, dovecot):
    url = sqlite_url(tmp_path)
    dovecot.append(USER_UNKNOWN_BOUNCE)
    dovecot.append(SPAM_BOUNCE)

    intake = _run_once(url, dovecot, move_to="Processed")

    assert intake.stats.messages == 2
    assert dovecot.flags() == {}
    moved = dovecot.flags("Processed")
    assert len(moved) == 2
    assert not any("\\Seen" in message_flags for message_flags in moved.values())
    assert _categories(url, GONE) == ["bad-address"]
    assert _run_once(url, dovecot, move_to="Processed").stats.messages == 0


def test_move_to_non_ascii_mailbox(tmp_path, dovecot):
    dovecot.append(USER_UNKNOWN_BOUNCE)

    _run_once(sqlite_url(tmp_path), dovecot, move_to="Zurückgewiesen")

    # IMAP names mailboxes in modified UTF-7: "ü" is U+00FC, "&APw-".
    assert len(dovecot.flags("Zur&APw-ckgewiesen")) == 1
    assert dovecot.flags() == {}


def test_move_without_move_capability():
    # Dovecot still accepts MOVE, but the client must go by the capabilities it is shown.
    server = start_dovecot(extra_config="imap_capability = IMAP4rev1 LITERAL+ UIDPLUS\n")
    try:
        database_dir = server.root / "db"
        database_dir.mkdir()
        url = sqlite_url(database_dir)
        server.append(USER_UNKNOWN_BOUNCE)
        # Another client flagged this one \Deleted without expunging it, and it must stay.
        deleted_by_other = server.append(SPAM_BOUNCE, flags="\\Deleted")
        server.append(postfix_dsn("third.reader@example.org", USER_UNKNOWN))

        intake = _run_once(url, server, move_to="Processed")

        assert intake.stats.messages == 2
        # Dovecot logs per session how many messages were flagged \Deleted and expunged. MOVE
        # counts 0 and 0, and a plain EXPUNGE would also have removed the third message.
        _wait_for(lambda: "deleted=2 expunged=2" in server.log_tail(),
                  "session log with deleted=2 expunged=2")
        assert list(server.flags()) == [deleted_by_other]
        assert "\\Deleted" in server.flags()[deleted_by_other]
        assert len(server.flags("Processed")) == 2
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_move_without_uidplus_leaves_deleted(caplog):
    server = start_dovecot(extra_config="imap_capability = IMAP4rev1 LITERAL+\n")
    try:
        database_dir = server.root / "db"
        database_dir.mkdir()
        url = sqlite_url(database_dir)
        server.append(USER_UNKNOWN_BOUNCE)
        server.append(SPAM_BOUNCE)

        with caplog.at_level(logging.WARNING, logger="bouncewise.ledger"):
            intake = _run_once(url, server, move_to="Processed")

        assert intake.stats.messages == 2
        originals = server.flags()
        assert len(originals) == 2
        assert all("\\Deleted" in message_flags for message_flags in originals.values())
        assert len(server.flags("Processed")) == 2
        assert "no MOVE and no UIDPLUS" in caplog.text
        assert _run_once(url, server, move_to="Processed").stats.messages == 0
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_keywords_not_allowed():
    # Without the "w" right Dovecot stores only \Seen and \Deleted: PERMANENTFLAGS has no \*.
    server = start_dovecot(global_acl="INBOX user=bounces lrsipte\n")
    try:
        database_dir = server.root / "db"
        database_dir.mkdir()
        url = sqlite_url(database_dir)
        server.append(USER_UNKNOWN_BOUNCE)

        with pytest.raises(ImapError) as caught:
            _run_once(url, server)
        message = str(caught.value)
        assert f"127.0.0.1:{server.port}" in message
        assert "does not allow keywords" in message
        assert "move_to" in message
        assert _categories(url, GONE) == []

        intake = _run_once(url, server, move_to="Processed")
        assert intake.stats.messages == 1
        assert server.flags() == {}
        assert len(server.flags("Processed")) == 1
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_batches_and_search_windows(tmp_path, dovecot, monkeypatch):
    # Small windows and batches, so that one run needs several of each.
    monkeypatch.setattr(imap, "SEARCH_WINDOW", 3)
    monkeypatch.setattr(imap, "SIZE_CHUNK", 2)
    monkeypatch.setattr(imap, "FETCH_BYTES", 1)
    monkeypatch.setattr(imap, "MARK_CHUNK", 2)
    url = sqlite_url(tmp_path)
    readers = [f"reader{number}@example.org" for number in range(7)]
    for reader in readers:
        dovecot.append(postfix_dsn(reader, USER_UNKNOWN))
    # A message already marked by an earlier run stays as it is.
    dovecot.append(postfix_dsn("earlier@example.org", USER_UNKNOWN), flags=KEYWORD)

    ledger, intake, settings = _setup(url, dovecot, ledger_table={"batch_size": 3})
    try:
        ingest_imap(intake, settings)
    finally:
        ledger.close()

    assert intake.stats.messages == 7
    assert all(_categories(url, reader) == ["bad-address"] for reader in readers)
    assert _categories(url, "earlier@example.org") == []
    flags = dovecot.flags()
    assert len(flags) == 8
    assert all(KEYWORD in message_flags for message_flags in flags.values())


def test_large_message_is_cut(tmp_path, dovecot, caplog):
    url = sqlite_url(tmp_path)
    closing = b"--4VfK1d0QZrz9sWm.1715670764/mail.example.com--"
    returned_message = (b"--4VfK1d0QZrz9sWm.1715670764/mail.example.com\r\n"
                        b"Content-Type: text/plain\r\n\r\n" + b"returned text line\r\n" * 2000)
    large = USER_UNKNOWN_BOUNCE.replace(closing, returned_message + closing)
    assert len(large) > 20_000
    dovecot.append(large)

    ledger, intake, settings = _setup(url, dovecot, ledger_table={"max_message_size": 8192})
    with caplog.at_level(logging.INFO, logger="bouncewise.ledger"):
        try:
            ingest_imap(intake, settings)
        finally:
            ledger.close()

    assert intake.stats.messages == 1
    assert intake.stats.unreadable == 0
    assert _categories(url, GONE) == ["bad-address"]
    assert "over max_message_size" in caplog.text
    assert KEYWORD in dovecot.flags()[1]


# Failures.


def _make_database_unreachable(url: str, ledger: Ledger) -> None:
    """Make every new connection of `ledger` fail, as a database server that went away does."""
    ledger.engine.dispose()
    if url.startswith("sqlite"):
        folder = Path(url.removeprefix("sqlite:///")).parent
        folder.rename(folder.with_name(folder.name + "-moved"))
        return
    name = url.rsplit("/", 1)[1]
    admin = create_engine(f"{POSTGRES_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def test_database_failure_leaves_messages_unmarked(database_url, dovecot, tmp_path):
    if database_url.startswith("sqlite"):
        # A folder of its own, so that moving it away takes the database with it.
        (tmp_path / "db").mkdir()
        database_url = sqlite_url(tmp_path / "db")
    dovecot.append(USER_UNKNOWN_BOUNCE)
    dovecot.append(SPAM_BOUNCE)
    ledger, intake, settings = _setup(database_url, dovecot)
    _make_database_unreachable(database_url, ledger)

    with pytest.raises(LedgerUnavailable):
        ingest_imap(intake, settings)

    flags = dovecot.flags()
    assert sorted(flags) == [1, 2]
    assert not any(KEYWORD in message_flags for message_flags in flags.values())


def test_database_back_records_everything(tmp_path, dovecot):
    folder = tmp_path / "db"
    folder.mkdir()
    url = sqlite_url(folder)
    dovecot.append(USER_UNKNOWN_BOUNCE)
    ledger, intake, settings = _setup(url, dovecot)
    _make_database_unreachable(url, ledger)
    with pytest.raises(LedgerUnavailable):
        ingest_imap(intake, settings)

    (tmp_path / "db-moved").rename(folder)
    intake = _run_once(url, dovecot)

    assert intake.stats.messages == 1
    assert _categories(url, GONE) == ["bad-address"]
    assert KEYWORD in dovecot.flags()[1]


def test_wrong_password(tmp_path, dovecot):
    with pytest.raises(ImapError) as caught:
        _run_once(sqlite_url(tmp_path), dovecot, password="not-the-password")

    message = str(caught.value)
    assert f"127.0.0.1:{dovecot.port}" in message
    assert f"login as {USER} failed" in message
    assert "AUTHENTICATIONFAILED" in message
    assert "not-the-password" not in message


def test_connection_refused(tmp_path, dovecot):
    port = dovecot.port
    dovecot.stop()

    with pytest.raises(ImapError) as caught:
        _run_once(sqlite_url(tmp_path), dovecot)

    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "cannot connect: Connection refused" in message


def test_password_file(tmp_path, dovecot):
    password_file = tmp_path / "imap-password"
    password_file.write_text(f"{PASSWORD}\nsecond line is ignored\n")
    dovecot.append(USER_UNKNOWN_BOUNCE)

    intake = _run_once(sqlite_url(tmp_path), dovecot, password="",
                       password_file=str(password_file))

    assert intake.stats.messages == 1


@pytest.mark.parametrize(("table", "expected"), [
    ({"password": "x", "password_file": "/nonexistent"}, "both password and password_file"),
    ({"password": ""}, "has no password"),
    ({"password": "", "password_file": "/nonexistent/imap-password"}, "cannot read"),
    ({"done_keyword": "two words"}, "not a valid IMAP keyword"),
    ({"done_keyword": "\\Seen"}, "not a valid IMAP keyword"),
    ({"move_to": "INBOX"}, "move_to is the mailbox that is read"),
    ({"host": ""}, "host is not set"),
])
def test_invalid_settings(tmp_path, table, expected):
    imap_table = dict(host="127.0.0.1", port=1, security="none", user=USER, password="x")
    imap_table.update(table)
    config = config_for(sqlite_url(tmp_path), imap=imap_table)
    ledger = Ledger(config)
    try:
        with pytest.raises(ImapError, match=expected):
            ingest_imap(Intake(ledger, config), config.imap)
    finally:
        ledger.close()


# Follow mode.


def _follow(intake: Intake, settings: ImapSettings, stop: threading.Event,
            errors: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            ingest_imap(intake, settings, follow=True, interval=0.1, stop=stop)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            errors.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _marked(server: Dovecot, uid: int) -> Callable[[], bool]:
    return lambda: KEYWORD in server.flags().get(uid, set())


def test_follow_picks_up_new_message(tmp_path, dovecot):
    url = sqlite_url(tmp_path)
    first = dovecot.append(USER_UNKNOWN_BOUNCE)
    ledger, intake, settings = _setup(url, dovecot)
    stop = threading.Event()
    errors: list[BaseException] = []
    thread = _follow(intake, settings, stop, errors)
    try:
        _wait_for(_marked(dovecot, first), "first message marked")
        second = dovecot.append(SPAM_BOUNCE)
        _wait_for(_marked(dovecot, second), "message appended after the start marked")
    finally:
        stop.set()
        thread.join(WAIT_DEADLINE)
        ledger.close()

    assert not thread.is_alive()
    assert errors == []
    assert intake.stats.messages == 2
    assert _categories(url, CAREFUL) == ["spam-block"]


def test_follow_reconnects_after_restart(tmp_path, dovecot, caplog):
    url = sqlite_url(tmp_path)
    first = dovecot.append(USER_UNKNOWN_BOUNCE)
    ledger, intake, settings = _setup(url, dovecot)
    stop = threading.Event()
    errors: list[BaseException] = []
    with caplog.at_level(logging.WARNING, logger="bouncewise.ledger"):
        thread = _follow(intake, settings, stop, errors)
        try:
            _wait_for(_marked(dovecot, first), "first message marked")
            dovecot.restart()
            second = dovecot.append(SPAM_BOUNCE)
            _wait_for(_marked(dovecot, second), "message appended after the restart marked")
        finally:
            stop.set()
            thread.join(WAIT_DEADLINE)
            ledger.close()

    assert not thread.is_alive()
    assert errors == []
    assert intake.stats.messages == 2
    assert f"127.0.0.1:{dovecot.port}" in caplog.text
    assert "connecting again" in caplog.text


def test_follow_stops_on_database_failure(tmp_path, dovecot):
    folder = tmp_path / "db"
    folder.mkdir()
    url = sqlite_url(folder)
    first = dovecot.append(USER_UNKNOWN_BOUNCE)
    ledger, intake, settings = _setup(url, dovecot)
    stop = threading.Event()
    errors: list[BaseException] = []
    thread = _follow(intake, settings, stop, errors)
    try:
        _wait_for(_marked(dovecot, first), "first message marked")
        _make_database_unreachable(url, ledger)
        second = dovecot.append(SPAM_BOUNCE)
        thread.join(WAIT_DEADLINE)
    finally:
        stop.set()
        thread.join(WAIT_DEADLINE)
        ledger.close()

    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], LedgerUnavailable)
    assert KEYWORD not in dovecot.flags()[second]


# TLS, with a certificate made for the test and trusted through SSL_CERT_FILE.


@pytest.fixture
def tls_dovecot():
    server = start_dovecot(tls=True)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.root, ignore_errors=True)


def test_tls_and_starttls(tmp_path, tls_dovecot, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_dovecot.cert_file))
    url = sqlite_url(tmp_path)
    first = tls_dovecot.append(USER_UNKNOWN_BOUNCE)

    implicit = _run_once(url, tls_dovecot, security="tls", port=tls_dovecot.tls_port)
    second = tls_dovecot.append(SPAM_BOUNCE)
    upgraded = _run_once(url, tls_dovecot, security="starttls", host="localhost")

    assert implicit.stats.messages == 1
    assert upgraded.stats.messages == 1
    flags = tls_dovecot.flags()
    assert KEYWORD in flags[first]
    assert KEYWORD in flags[second]


def test_untrusted_certificate(tmp_path, tls_dovecot, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    tls_dovecot.append(USER_UNKNOWN_BOUNCE)

    for security, port in (("tls", tls_dovecot.tls_port), ("starttls", tls_dovecot.port)):
        with pytest.raises(ImapError) as caught:
            _run_once(sqlite_url(tmp_path), tls_dovecot, security=security, port=port)
        message = str(caught.value)
        assert f"127.0.0.1:{port}" in message
        assert "certificate verify failed" in message

    assert KEYWORD not in tls_dovecot.flags()[1]


def _command_config(tmp_path: Path, server: Dovecot, password: str) -> Path:
    # JSON writes strings and numbers as TOML does.
    table = server.imap_table(password=password)
    lines = ["[imap]"] + [f"{name} = {json.dumps(value)}" for name, value in table.items()]
    config = tmp_path / "ledger.toml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _run_command(tmp_path: Path, server: Dovecot, password: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).with_name("bouncewise")), "ledger", "--config",
               str(_command_config(tmp_path, server, password)), "--database",
               sqlite_url(tmp_path), "ingest", "--imap"]
    return subprocess.run(command, capture_output=True, timeout=120)


def test_command_reads_imap(tmp_path, dovecot):
    dovecot.append(USER_UNKNOWN_BOUNCE)

    completed = _run_command(tmp_path, dovecot, PASSWORD)

    assert completed.returncode == 0
    assert b"messages=1" in completed.stderr


def test_command_wrong_password_exits_75(tmp_path, dovecot):
    completed = _run_command(tmp_path, dovecot, "not the password")

    assert completed.returncode == 75
    assert b"login as" in completed.stderr
    assert b"Traceback" not in completed.stderr
