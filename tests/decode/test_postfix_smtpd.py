"""The decoder of Postfix's SMTP server error report to the postmaster."""

from __future__ import annotations

from pathlib import Path

from bouncewise.decode import decode_message, postfix_smtpd
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_transcript_rows_per_recipient():
    report = decode_message(Message((FIXTURES / "postfix-smtpd-errors.eml").read_bytes()))

    assert report.decoded_by == postfix_smtpd.NAME
    rows = {row.final_recipient: row for row in report.recipients}
    assert list(rows) == ["olivia@example.net", "peggy@example.net"]


def test_data_refusal_fails_accepted_recipient():
    report = postfix_smtpd.decode(Message((FIXTURES / "postfix-smtpd-errors.eml").read_bytes()))

    olivia = report.recipients[0]
    assert olivia.reply_code == "451"
    assert olivia.status == "4.3.0"
    assert olivia.smtp_command == "DATA"
    assert olivia.diagnostic_code == "451 4.3.0 Error: queue file write error"


def test_rcpt_refusal_fails_only_its_recipient():
    report = postfix_smtpd.decode(Message((FIXTURES / "postfix-smtpd-errors.eml").read_bytes()))

    peggy = report.recipients[1]
    assert peggy.reply_code == "550"
    assert peggy.status == "5.1.1"
    assert peggy.smtp_command == "RCPT"
    assert peggy.diagnostic_code.endswith("User unknown")


def test_other_subject_is_not_decoded():
    raw = b"Subject: Hello\n\nTranscript of session follows.\n\n In:  RCPT TO:<a@example.org>\n"

    assert postfix_smtpd.decode(Message(raw)) is None
