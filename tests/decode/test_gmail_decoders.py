"""Decoders for Gmail's plain-text bounces and Google Groups refusals."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode_fixture(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_gmail_permanent_reads_server_reply():
    report = decode_fixture("gmail-permanent.eml")
    assert report.decoded_by == "gmail"
    [row] = report.recipients
    assert row.final_recipient == "alice@example.org"
    assert row.status == "5.1.1"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 5.1.1 <alice@example.org>: Recipient address rejected: no mailbox here"
    assert row.remote_mta == "mx1.example.org"
    assert row.kind == "failure"
    assert report.original_message_id == "<original-1@example.net>"


def test_gmail_state_and_doubled_code():
    [row] = decode_fixture("gmail-state.eml").recipients
    assert row.final_recipient == "bob@example.com"
    assert row.status == "5.2.2"
    assert row.reply_code == "552"
    assert row.diagnostic_code == "552 5.2.2 <bob@example.com>... Mailbox quota exceeded"
    assert row.smtp_command == "RCPT"


def test_gmail_delay_without_reply():
    [row] = decode_fixture("gmail-delayed.eml").recipients
    assert row.final_recipient == "carol@example.net"
    assert row.kind == "delay"
    assert row.action == "delayed"
    assert row.reply_code == ""
    assert "did not accept our requests to connect" in row.diagnostic_code
    assert "192.0.2.20: timed out" in row.diagnostic_code
    assert "Learn more" not in row.diagnostic_code


def test_googlegroups_english():
    report = decode_fixture("googlegroups-english.eml")
    assert report.decoded_by == "googlegroups"
    [row] = report.recipients
    assert row.final_recipient == "staff@googlegroups.com"
    assert row.status == ""
    assert row.reply_code == ""
    assert row.diagnostic_code.startswith("We're writing to let you know that the group")
    assert "may not have permission to post" in row.diagnostic_code
    assert "poster@example.net" not in row.diagnostic_code


def test_googlegroups_other_language():
    [row] = decode_fixture("googlegroups-german.eml").recipients
    assert row.final_recipient == "team@googlegroups.com"
    assert row.diagnostic_code.startswith("wir möchten Sie darüber informieren")
    assert "nicht existiert" in row.diagnostic_code
