"""The `bouncewise` command, run as a subprocess: input kinds, formats, order, exit status."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import EXAMPLES, postfix_dsn, run_cli

from bouncewise.result import FIELD_NAMES

EXPECTED_FIELDS = ("source", "recipient", "status", "reply_code", "reason", "category",
                   "hard_bounce", "action", "diagnostic", "diagnostic_type", "remote_mta",
                   "reporting_mta", "smtp_command", "sender", "original_message_id", "subject",
                   "timestamp", "feedback_type", "decoded_by", "advice", "truncated")

# What the shipped examples must come out as: source suffix -> (recipient, reason).
EXAMPLE_REASONS = {
    "arf-abuse-report.eml": ("grace@example.net", "feedback"),
    "bounces.mbox#1": ("kim@example.net", "expired"),
    "bounces.mbox#2": ("leo@nonexistent.example.org", "hostunknown"),
    "exim-blocklisted.eml": ("dave@example.org", "blocked"),
    "gmail-mailbox-full.eml": ("judy@example.net", "mailboxfull"),
    "out-of-office.eml": ("heidi@example.org", "vacation"),
    "postfix-rejected-as-spam.eml": ("bob@example.net", "spamdetected"),
    "postfix-unknown-user.eml": ("j.doe@example.org", "userunknown"),
    "qmail-no-mailbox.eml": ("frank@example.org", "userunknown"),
}


def _jsonl(finished) -> list[dict]:
    return [json.loads(line) for line in finished.stdout.decode().splitlines()]


def test_field_names_are_the_contract():
    assert FIELD_NAMES == EXPECTED_FIELDS


def test_examples_folder_reasons():
    finished = run_cli("classify", "--format", "jsonl", str(EXAMPLES))
    assert finished.returncode == 0
    assert finished.stderr == b""
    found = {row["source"][len(str(EXAMPLES)) + 1:]: (row["recipient"], row["reason"])
             for row in _jsonl(finished)}
    assert found == EXAMPLE_REASONS


def test_single_file():
    path = EXAMPLES / "postfix-unknown-user.eml"
    rows = _jsonl(run_cli("classify", "--format", "jsonl", str(path)))
    assert len(rows) == 1
    assert rows[0]["source"] == str(path)
    assert rows[0]["hard_bounce"] is True
    assert rows[0]["status"] == "5.1.1"
    assert rows[0]["subject"] == "Your May update"


def test_mbox_sources_numbered():
    path = EXAMPLES / "bounces.mbox"
    rows = _jsonl(run_cli("classify", "--format", "jsonl", str(path)))
    assert [row["source"] for row in rows] == [f"{path}#1", f"{path}#2"]


def test_maildir(tmp_path):
    for folder in ("cur", "new", "tmp"):
        (tmp_path / folder).mkdir()
    shutil.copy(EXAMPLES / "qmail-no-mailbox.eml", tmp_path / "new" / "1715930469.M1P2.host")
    shutil.copy(EXAMPLES / "exim-blocklisted.eml", tmp_path / "cur" / "1715853931.M3P4.host:2,S")
    shutil.copy(EXAMPLES / "postfix-unknown-user.eml", tmp_path / "tmp" / "1715670764.M5P6.host")
    rows = _jsonl(run_cli("classify", "--format", "jsonl", str(tmp_path)))
    assert [row["recipient"] for row in rows] == ["frank@example.org", "dave@example.org"]


def test_nested_folder(tmp_path):
    (tmp_path / "2024" / "05").mkdir(parents=True)
    shutil.copy(EXAMPLES / "gmail-mailbox-full.eml", tmp_path / "2024" / "05" / "a.eml")
    shutil.copy(EXAMPLES / "out-of-office.eml", tmp_path / "top.eml")
    rows = _jsonl(run_cli("classify", "--format", "jsonl", str(tmp_path)))
    # A folder's own files come before its subfolders, each in name order.
    assert [row["reason"] for row in rows] == ["vacation", "mailboxfull"]


def test_stdin():
    finished = run_cli("classify", "--format", "jsonl", "-", stdin=postfix_dsn())
    rows = _jsonl(finished)
    assert [(row["source"], row["reason"]) for row in rows] == [("-", "userunknown")]
    assert finished.returncode == 0


def test_stdin_mbox():
    data = (EXAMPLES / "bounces.mbox").read_bytes()
    rows = _jsonl(run_cli("classify", "--format", "jsonl", "-", stdin=data))
    assert [row["source"] for row in rows] == ["-#1", "-#2"]


def test_format_json_is_array():
    finished = run_cli("classify", "--format", "json", str(EXAMPLES))
    rows = json.loads(finished.stdout)
    assert len(rows) == len(EXAMPLE_REASONS)
    assert tuple(rows[0]) == EXPECTED_FIELDS


def test_format_json_empty_is_empty_array(tmp_path):
    (tmp_path / "plain.eml").write_bytes(b"From: a@example.org\nSubject: hello\n\nhi\n")
    finished = run_cli("classify", "--format", "json", str(tmp_path))
    assert json.loads(finished.stdout) == []
    assert finished.returncode == 0


def test_format_jsonl_fields():
    rows = _jsonl(run_cli("classify", "--format", "jsonl", str(EXAMPLES)))
    for row in rows:
        assert tuple(row) == EXPECTED_FIELDS


def test_format_csv_header_and_rows():
    finished = run_cli("classify", "--format", "csv", str(EXAMPLES))
    rows = list(csv.reader(io.StringIO(finished.stdout.decode())))
    assert tuple(rows[0]) == EXPECTED_FIELDS
    assert len(rows) == 1 + len(EXAMPLE_REASONS)


def test_format_table():
    finished = run_cli("classify", "--format", "table", str(EXAMPLES / "postfix-unknown-user.eml"))
    lines = finished.stdout.decode().splitlines()
    assert lines[0].split() == ["source", "recipient", "status", "reply_code", "reason",
                                "category", "hard_bounce"]
    assert lines[1].split()[1:] == ["j.doe@example.org", "5.1.1", "550", "userunknown",
                                    "bad-address", "yes"]


def test_default_format_is_jsonl_on_pipe():
    finished = run_cli("classify", str(EXAMPLES / "qmail-no-mailbox.eml"))
    assert json.loads(finished.stdout)["reason"] == "userunknown"


def test_jobs_two_keeps_input_order(tmp_path):
    names = sorted(path.name for path in EXAMPLES.glob("*.eml"))
    paths = []
    for index in range(120):
        name = names[index % len(names)]
        target = tmp_path / f"{index:03d}-{name}"
        shutil.copy(EXAMPLES / name, target)
        paths.append(str(target))

    single = run_cli("classify", "--format", "jsonl", "--jobs", "1", *paths)
    double = run_cli("classify", "--format", "jsonl", "--jobs", "2", *paths)
    assert double.returncode == 0
    assert [row["source"] for row in _jsonl(double)] == paths
    assert double.stdout == single.stdout


def test_exit_status_one_with_error_line(tmp_path):
    missing = tmp_path / "missing.eml"
    finished = run_cli("classify", "--format", "jsonl", str(EXAMPLES / "out-of-office.eml"),
                       str(missing))
    assert finished.returncode == 1
    assert len(_jsonl(finished)) == 1
    assert finished.stderr.decode() == f"bouncewise: {missing}: not found\n"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_error_lines_keep_order(tmp_path, jobs):
    (tmp_path / "a.eml").write_bytes(b"")
    (tmp_path / "b.eml").write_bytes(postfix_dsn())
    (tmp_path / "c.eml").write_bytes(b"\x00\xff" * 50)
    finished = run_cli("classify", "--format", "jsonl", "--jobs", jobs, str(tmp_path))
    assert finished.stderr.decode().splitlines() == [
        f"bouncewise: {tmp_path / 'a.eml'}: empty input",
        f"bouncewise: {tmp_path / 'c.eml'}: not a mail message: the first line is not a header field",
    ]
    assert finished.returncode == 1


def test_unknown_format_is_usage_error():
    finished = run_cli("classify", "--format", "xml", str(EXAMPLES))
    assert finished.returncode == 2
    assert b"Invalid value for '--format'" in finished.stderr


def test_explain_argument():
    finished = run_cli("explain", "--format", "jsonl", "550 5.1.1 <kim@example.org>: User unknown")
    row = json.loads(finished.stdout)
    assert row["reason"] == "userunknown"
    assert row["hard_bounce"] is True
    assert row["status"] == "5.1.1"
    assert finished.returncode == 0


def test_explain_stdin_lines():
    replies = b"550 5.7.1 Message rejected as spam\n\n452 4.2.2 Mailbox full\n\xff\xfe junk\n"
    finished = run_cli("explain", "--format", "jsonl", stdin=replies)
    rows = [json.loads(line) for line in finished.stdout.decode().splitlines()]
    assert [row["reply"][:10] for row in rows] == ["550 5.7.1 ", "452 4.2.2 ", "\ufffd\ufffd junk"]
    assert rows[0]["reason"] == "spamdetected"
    assert rows[1]["reason"] == "mailboxfull"
    assert finished.returncode == 0


def test_explain_table():
    finished = run_cli("explain", "--format", "table", "550 5.7.1 Message rejected as spam")
    text = finished.stdout.decode()
    assert text.startswith("550 5.7.1 Message rejected as spam\n  reason: spamdetected")
    assert "advice: " in text


def test_explain_json_array():
    finished = run_cli("explain", "--format", "json", "550 5.1.1 User unknown", "421 4.4.2 timeout")
    assert [row["reply"] for row in json.loads(finished.stdout)] == ["550 5.1.1 User unknown",
                                                                     "421 4.4.2 timeout"]


def test_version():
    finished = run_cli("--version")
    assert finished.stdout.decode().startswith("bouncewise, version ")


def test_installed_command_runs():
    command = Path(sys.executable).parent / "bouncewise"
    if not command.exists():
        pytest.skip(f"no bouncewise command beside {sys.executable}: install the package first")
    finished = subprocess.run([str(command), "explain", "--format", "jsonl", "550 5.1.1 User unknown"],
                              capture_output=True, timeout=60, check=False)
    assert json.loads(finished.stdout)["reason"] == "userunknown"
