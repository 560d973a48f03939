"""The ARF decoder on RFC 5965 feedback reports and Hotmail's older complaint reports."""

from __future__ import annotations

from pathlib import Path

from bouncewise.decode import arf, decode_message
from bouncewise.decode.fields import FEEDBACK
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode_fixture(name: str):
    report = decode_message(Message((FIXTURES / name).read_bytes()))
    assert report is not None, f"{name} was not decoded"
    return report


def test_arf_report_fields():
    report = decode_fixture("arf-abuse.eml")

    assert report.decoded_by == arf.NAME
    row = report.recipients[0]
    assert row.final_recipient == "judy@example.com"
    assert row.kind == FEEDBACK
    assert row.feedback_type == "abuse"
    assert row.diagnostic_code == "abuse"
    assert row.reporting_mta == "fbl.example.com"
    assert row.last_attempt_date == "2024-05-20T09:58:00Z"
    assert report.sender == "offers@example.net"
    assert report.original_message_id == "<offers-20@example.net>"


def test_hotmail_report_without_arf_part():
    report = decode_fixture("arf-hotmail.eml")

    assert report.decoded_by == arf.NAME
    row = report.recipients[0]
    assert row.final_recipient == "mallory@example.com"
    assert row.kind == FEEDBACK
    assert row.feedback_type == "abuse"
    assert report.subject == "Newsletter"
    assert report.sender == "news@example.net"


def test_report_part_labelled_text_plain():
    raw = (b"Content-Type: multipart/report; report-type=feedback-report; boundary=F\n\n"
           b"--F\nContent-Type: text/plain\n\nA complaint.\n"
           b"--F\nContent-Type: text/plain\n\n"
           b"Feedback-Type: fraud\nUser-Agent: Example/1\nVersion: 1\n"
           b"Original-Rcpt-To: <nina@example.com>\n"
           b"--F--\n")
    report = arf.decode(Message(raw))

    assert report is not None
    assert report.recipients[0].final_recipient == "nina@example.com"
    assert report.recipients[0].feedback_type == "fraud"


def test_several_original_rcpt_to():
    raw = (b"Content-Type: multipart/report; report-type=feedback-report; boundary=F\n\n"
           b"--F\nContent-Type: message/feedback-report\n\n"
           b"Feedback-Type: abuse\nVersion: 1\n"
           b"Original-Rcpt-To: <a@example.com>\nOriginal-Rcpt-To: <b@example.org>\n"
           b"--F--\n")
    report = arf.decode(Message(raw))

    assert [row.final_recipient for row in report.recipients] == ["a@example.com", "b@example.org"]


def test_plain_message_is_not_feedback():
    raw = (b"From: someone@example.com\nSubject: hello\n\n"
           b"X-HmXmrOriginalRecipient is a header name.\n")

    assert arf.decode(Message(raw)) is None
