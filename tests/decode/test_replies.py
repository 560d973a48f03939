"""Multi-line SMTP replies joined by decoders, and decoder limits read from `Message.limits`."""

from dataclasses import replace

import pytest
from conftest import postfix_dsn

from bouncewise.config import DEFAULT_LIMITS
from bouncewise.decode import decode_message
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.mail.message import Message

CASES = [
    # joined reply, expected text
    ("552-5.2.2 The mailbox is full. Please 552-5.2.2 ask the recipient to 552 5.2.2 clean up.",
     "552-5.2.2 The mailbox is full. Please ask the recipient to clean up."),
    ("550-Mailbox unavailable 550-try again 550 later", "550-Mailbox unavailable try again later"),
    ("550-first line\n550-second line\n550 last line", "550-first line second line last line"),
    # A single-line reply keeps its text, even where the code recurs.
    ("550 5.1.1 User unknown 550 5.1.1", "550 5.1.1 User unknown 550 5.1.1"),
    # Another code inside the text is no continuation prefix.
    ("451-4.7.1 Greylisted 550 5.7.1 elsewhere 451 4.7.1 retry",
     "451-4.7.1 Greylisted 550 5.7.1 elsewhere retry"),
    # The same code with another status is text, not a prefix.
    ("550-5.7.1 Blocked 550 5.1.1 listed", "550-5.7.1 Blocked 550 5.1.1 listed"),
    ("User unknown", "User unknown"),
    ("", ""),
]


@pytest.mark.parametrize(("reply", "expected"), CASES)
def test_drop_continuation_codes(reply, expected):
    assert drop_continuation_codes(reply) == expected


# A Gmail reply as Postfix rewraps it: the continuation prefixes land inside the lines.
GMAIL_REPLY = ("552-5.2.2 The recipient's inbox is out of storage space. Please\n"
               "    552-5.2.2 direct the recipient to 552 5.2.2\n"
               "    https://support.example.com/mail/?p=OverQuota a1-20020a17 - gsmtp")


def test_gmail_diagnostic_without_prefixes():
    report = decode_message(Message(postfix_dsn(status="5.2.2", reply=GMAIL_REPLY)))

    [row] = report.recipients
    assert row.diagnostic_code.startswith("552-5.2.2 The recipient's inbox is out of storage")
    assert "Please direct the recipient to https://support.example.com/" in row.diagnostic_code
    assert row.diagnostic_code.count("5.2.2") == 1
    assert row.reply_code == "552"
    assert row.status == "5.2.2"


def test_transcript_reply_without_prefixes():
    # The notice paragraph is read when the DSN gives no Diagnostic-Code.
    data = postfix_dsn(status="5.2.2", reply=GMAIL_REPLY)
    data = data.replace(b"Diagnostic-Code: smtp; " + GMAIL_REPLY.encode() + b"\n", b"")
    report = decode_message(Message(data))

    [row] = report.recipients
    assert "Please direct the recipient to https://support.example.com/" in row.diagnostic_code
    assert row.diagnostic_code.count("5.2.2") == 1


def test_text_diagnostic_limit_from_message():
    raw = (b"From: MAILER-DAEMON@example.net\nTo: sender@example.com\nSubject: Undeliverable\n\n"
           b"Delivery to <ann@example.org> failed. Remote host said: 550 "
           + b"very long reason " * 20 + b"\n")
    limits = replace(DEFAULT_LIMITS, max_diagnostic_length=40)

    [default_row] = decode_message(Message(raw)).recipients
    [row] = decode_message(Message(raw, limits)).recipients

    assert len(default_row.diagnostic_code) > 40
    assert len(row.diagnostic_code) <= 40
    assert row.diagnostic_code.startswith("550 very long reason")


def test_transcript_paragraph_limit_from_message():
    reply = "550 5.1.1 Recipient unknown\n" + "".join(f"    line{index}\n" for index in range(8))
    data = postfix_dsn(reply=reply.rstrip("\n"))
    data = data.replace(b"Diagnostic-Code: smtp; 550", b"X-Note: 550")
    limits = replace(DEFAULT_LIMITS, max_paragraph_lines=3)

    [default_row] = decode_message(Message(data)).recipients
    [row] = decode_message(Message(data, limits)).recipients

    assert "line7" in default_row.diagnostic_code
    assert "line1" in row.diagnostic_code
    assert "line2" not in row.diagnostic_code
