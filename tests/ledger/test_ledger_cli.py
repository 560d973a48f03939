"""`bouncewise ledger` and `bouncewise verp` through the installed command."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bounces import SPAM, USER_UNKNOWN, postfix_dsn

COMMAND = str(Path(sys.executable).with_name("bouncewise"))
SECRET = "cli test secret"


def _run(*arguments: str, database: str = "", config: Path | None = None,
         stdin: bytes = b"") -> subprocess.CompletedProcess:
    options = []
    if config is not None:
        options += ["--config", str(config)]
    if database:
        options += ["--database", database]
    command = [COMMAND, arguments[0], *options, *arguments[1:]]
    return subprocess.run(command, input=stdin, capture_output=True, timeout=120)


def _maildir(root: Path) -> Path:
    for name in ("cur", "new", "tmp"):
        (root / name).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def database(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


def test_ingest_folder_then_status_and_exports(tmp_path, database):
    folder = tmp_path / "bounces"
    folder.mkdir()
    (folder / "gone.eml").write_bytes(postfix_dsn("gone@dest.test",
                                                  USER_UNKNOWN.format("gone@dest.test")))
    (folder / "spam.eml").write_bytes(postfix_dsn("bob@dest.test", SPAM))

    ingested = _run("ledger", "ingest", str(folder), database=database)
    status = _run("ledger", "status", "gone@dest.test", "--format", "json", database=database)
    exported = _run("ledger", "suppressed", "--format", "csv", database=database)

    assert ingested.returncode == 0
    assert b"messages=2 duplicates=0" in ingested.stderr
    state = json.loads(status.stdout)
    assert state["recipient"]["suppressed"] is True
    assert state["events"][0]["reason"] == "userunknown"
    rows = list(csv.DictReader(io.StringIO(exported.stdout.decode())))
    assert [row["address"] for row in rows] == ["gone@dest.test"]


def test_status_text_names_decision(tmp_path, database):
    bounce = postfix_dsn("bob@dest.test", SPAM)
    _run("ledger", "ingest", "-", database=database, stdin=bounce)

    status = _run("ledger", "status", "bob@dest.test", database=database)

    text = status.stdout.decode()
    assert text.startswith("bob@dest.test: not suppressed")
    assert "spamdetected" in text
    assert "-> spam-block: not about the address; the sender is notified" in text


def test_unsuppress(tmp_path, database):
    _run("ledger", "ingest", "-", database=database,
         stdin=postfix_dsn("gone@dest.test", USER_UNKNOWN.format("gone@dest.test")))

    lifted = _run("ledger", "unsuppress", "gone@dest.test", database=database)
    again = _run("ledger", "unsuppress", "gone@dest.test", database=database)
    listed = _run("ledger", "suppressed", "--format", "json", database=database)

    assert lifted.returncode == 0
    assert again.returncode == 1
    assert json.loads(listed.stdout) == []


def test_stdin_with_unreachable_database_exits_75(tmp_path):
    database = f"sqlite:///{tmp_path / 'no such folder' / 'ledger.db'}"

    completed = _run("ledger", "ingest", "-", database=database,
                     stdin=postfix_dsn("bob@dest.test", SPAM))

    assert completed.returncode == 75
    assert len(completed.stderr.decode().strip().splitlines()) == 1
    assert b"nothing was recorded" in completed.stderr


def test_postgres_unreachable_exits_75():
    completed = _run("ledger", "ingest", "-",
                     database="postgresql+psycopg://nobody@127.0.0.1:1/none",
                     stdin=postfix_dsn("bob@dest.test", SPAM))

    assert completed.returncode == 75
    assert b"127.0.0.1" in completed.stderr


def test_maildir_messages_marked_seen_not_deleted(tmp_path, database):
    maildir = _maildir(tmp_path / "Maildir")
    (maildir / "new" / "1.host").write_bytes(postfix_dsn("bob@dest.test", SPAM))

    completed = _run("ledger", "ingest", str(maildir), database=database)

    assert completed.returncode == 0
    assert os.listdir(maildir / "new") == []
    assert os.listdir(maildir / "cur") == ["1.host:2,S"]


def test_maildir_left_alone_when_database_fails(tmp_path):
    maildir = _maildir(tmp_path / "Maildir")
    (maildir / "new" / "1.host").write_bytes(postfix_dsn("bob@dest.test", SPAM))

    completed = _run("ledger", "ingest", str(maildir),
                     database=f"sqlite:///{tmp_path / 'absent' / 'ledger.db'}")

    assert completed.returncode == 75
    assert os.listdir(maildir / "new") == ["1.host"]


def test_follow_picks_up_new_mail(tmp_path, database):
    maildir = _maildir(tmp_path / "Maildir")
    config = tmp_path / "ledger.toml"
    config.write_text("[ledger]\nfollow_interval = 0.2\n")
    follower = subprocess.Popen([COMMAND, "ledger", "--config", str(config), "--database",
                                 database, "ingest", "--follow", str(maildir)],
                                stderr=subprocess.PIPE)
    try:
        time.sleep(1)
        (maildir / "new" / "2.host").write_bytes(postfix_dsn("late@dest.test", SPAM))
        deadline = time.monotonic() + 30
        while os.listdir(maildir / "new") and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        follower.terminate()
        follower.wait(timeout=30)

    assert os.listdir(maildir / "cur") == ["2.host:2,S"]
    status = _run("ledger", "status", "late@dest.test", database=database)
    assert status.returncode == 0


def test_follow_refuses_plain_files(tmp_path, database):
    completed = _run("ledger", "ingest", "--follow", str(tmp_path), database=database)

    assert completed.returncode == 2
    assert b"--follow reads only Maildir folders" in completed.stderr


def test_verp_encode_and_decode(tmp_path):
    config = tmp_path / "ledger.toml"
    config.write_text(f'[verp]\nsecret = "{SECRET}"\ndomain = "bounce.sender.test"\n')

    encoded = _run("verp", "encode", "Alice@Dest.test", "--tag", "user-42", "--config",
                   str(config))
    address = encoded.stdout.decode().strip()
    decoded = _run("verp", "decode", address, "--config", str(config))
    altered = address.replace(address.split(".")[0][-3:], "aaa", 1)
    refused = _run("verp", "decode", altered, "--config", str(config))

    assert address.startswith("bounces+")
    assert address.endswith("@bounce.sender.test")
    assert json.loads(decoded.stdout) == {"recipient": "alice@dest.test", "tag": "user-42"}
    assert refused.returncode == 1
    assert b"does not verify" in refused.stderr or b"malformed" in refused.stderr


def test_bad_config_is_one_line(tmp_path):
    config = tmp_path / "ledger.toml"
    config.write_text("[policy]\nbad_adress_bounces = 2\n")

    completed = _run("ledger", "suppressed", config=config)

    assert completed.returncode == 75
    assert b"unknown key 'bad_adress_bounces' in [policy]" in completed.stderr


def test_read_commands_do_not_create_a_ledger(tmp_path):
    database = f"sqlite:///{tmp_path / 'typo.db'}"

    completed = _run("ledger", "status", "bob@dest.test", database=database)

    assert completed.returncode == 75
    assert b"run 'ledger ingest' first" in completed.stderr
    assert not (tmp_path / "typo.db").exists()


def test_unknown_database_kind_is_one_line():
    completed = _run("ledger", "ingest", "-", database="mysql://nobody@127.0.0.1/none",
                     stdin=postfix_dsn("bob@dest.test", SPAM))

    assert completed.returncode == 75
    assert len(completed.stderr.decode().strip().splitlines()) == 1
    assert b"cannot be used" in completed.stderr


def test_own_notice_coming_back_is_not_a_bounce(tmp_path, database):
    notice = (b"From: postmaster@sender.test\nTo: ann@sender.test\nSubject: Your message to "
              b"bob@dest.test was refused as spam\nAuto-Submitted: auto-generated\n"
              b"X-Bouncewise-Notice: 7\n\nThe server said: 554 5.7.1 rejected as spam\n")

    completed = _run("ledger", "ingest", "-", database=database, stdin=notice)

    assert completed.returncode == 0
    assert b"events=0" in completed.stderr
