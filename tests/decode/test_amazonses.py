"""Decoder for Amazon SES notifications and DSNs and Amazon WorkMail notices."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode_fixture(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_sns_bounce_with_broken_line():
    report = decode_fixture("amazonses-sns-bounce.eml")
    assert report.decoded_by == "amazonses"
    [row] = report.recipients
    assert row.final_recipient == "frank@example.org"
    assert row.status == "5.1.1"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 5.1.1 <frank@example.org>: user does not exist"
    assert row.reporting_mta == "a1-2.smtp-out.us-west-2.amazonses.com"
    assert report.sender == "news@example.net"


def test_sns_complaint_is_feedback():
    [row] = decode_fixture("amazonses-sns-complaint.eml").recipients
    assert row.final_recipient == "grace@example.org"
    assert row.kind == "feedback"
    assert row.feedback_type == "abuse"


def test_event_delivery_is_delivered():
    [row] = decode_fixture("amazonses-sns-delivery.eml").recipients
    assert row.final_recipient == "heidi@example.org"
    assert row.kind == "delivered"
    assert row.status == "2.0.0"
    assert row.reply_code == "250"


def test_dsn_unwraps_quoted_reply():
    report = decode_fixture("amazonses-dsn-wrapped.eml")
    assert report.decoded_by == "amazonses"
    [row] = report.recipients
    assert row.final_recipient == "ivan@example.org"
    assert row.status == "5.7.1"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 5.7.1 <ivan@example.org>... Relaying denied"
    assert "Unknown address error" not in row.diagnostic_code


def test_workmail_expired_takes_last_reply():
    report = decode_fixture("amazonworkmail-expired.eml")
    assert report.decoded_by == "amazonses"
    [row] = report.recipients
    assert row.final_recipient == "judy@example.org"
    assert row.status == "4.4.2"
    assert row.reply_code == "421"
    assert "Message expired" in row.diagnostic_code
    assert "421 4.4.2 Connection timed out" in row.diagnostic_code
