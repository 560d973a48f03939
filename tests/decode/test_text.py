"""The plain-text fallback on notices of smaller MTAs, on fixtures written for these tests."""

from pathlib import Path

import pytest

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

CASES = [
    # fixture, recipient, status, reply code, text the diagnostic must contain
    ("imailserver-unknown.eml", "anna@example.org", "", "", "Unknown user"),
    ("imailserver-response.eml", "ben@example.org", "", "550",
     "550-Message rejected: listed URL in message body"),
    ("x1-returned.eml", "carl@example.com", "", "", "User unknown"),
    ("x6-smtp-server.eml", "dora@example.org", "5.4.6", "554", "Hop count exceeded"),
    ("activehunter-transcript.eml", "eve@example.org", "5.1.1", "550",
     "User unknown in local recipient table"),
    ("mailfoundry-failed-with.eml", "fred@example.org", "", "550", "No such user here"),
]


def decode(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


@pytest.mark.parametrize(("name", "recipient", "status", "reply_code", "reply"), CASES)
def test_text_fallback_fields(name, recipient, status, reply_code, reply):
    report = decode(name)

    assert report.decoded_by == "text"
    [row] = report.recipients
    assert row.final_recipient == recipient
    assert row.status == status
    assert row.reply_code == reply_code
    assert reply in row.diagnostic_code


def test_text_drops_notice_boilerplate():
    row = decode("mailfoundry-failed-with.eml").recipients[0]

    assert row.diagnostic_code == "550 <fred@example.org> No such user here"
    assert row.remote_mta == "mx.example.org"


def test_text_reads_command_and_host():
    row = decode("x6-smtp-server.eml").recipients[0]

    assert row.smtp_command == "DATA"
    assert row.remote_mta == "198.51.100.80"
    assert row.diagnostic_code == "554 5.4.6 Hop count exceeded - possible mail loop"


def test_text_skips_message_ids():
    raw = (b"From: MAILER-DAEMON@example.org\nTo: sender@example.net\n"
           b"Subject: Undeliverable Mail\n\nThe message could not be delivered.\n"
           b"Message-ID: <1234.abcd@mail.example.net>\n")

    assert decode_message(Message(raw)) is None
