"""The RFC 3464 decoder on DSNs in the shapes Postfix, Sendmail and Exchange write them."""

from __future__ import annotations

from pathlib import Path

import pytest

from bouncewise.decode import decode_message, rfc3464
from bouncewise.decode.delivery_status import field_groups, find_embedded
from bouncewise.decode.fields import DELAY, FAILURE
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode_fixture(name: str):
    report = decode_message(Message((FIXTURES / name).read_bytes()))
    assert report is not None, f"{name} was not decoded"
    return report


def test_postfix_dsn_fields():
    report = decode_fixture("postfix-dsn.eml")

    assert report.decoded_by == rfc3464.NAME
    assert len(report.recipients) == 1
    row = report.recipients[0]
    assert row.final_recipient == "alice@example.org"
    assert row.status == "5.1.1"
    assert row.reply_code == "550"
    assert row.smtp_command == "RCPT"
    assert row.diagnostic_code == ("550 5.1.1 <alice@example.org>: Recipient address rejected: "
                                   "User unknown in virtual mailbox table")
    assert row.remote_mta == "mx.example.org"
    assert row.reporting_mta == "mx1.example.net"
    assert row.kind == FAILURE


def test_postfix_dsn_original_message():
    report = decode_fixture("postfix-dsn.eml")

    assert report.sender == "sender@example.net"
    assert report.original_message_id == "<report-2024-05@example.net>"
    assert report.subject == "Quarterly report"
    assert report.timestamp == "2024-05-14T00:12:30Z"


def test_postfix_original_recipient_same_group():
    # Original-Recipient after Final-Recipient belongs to the same recipient.
    groups = field_groups("Final-Recipient: rfc822; a@example.org\n"
                          "Original-Recipient: rfc822;a@example.org\n"
                          "Action: failed\nStatus: 5.1.1\n")
    assert len(groups) == 1
    assert groups[0]["original-recipient"] == "rfc822;a@example.org"


def test_sendmail_multiline_reply_from_transcript():
    report = decode_fixture("sendmail-dsn.eml")

    assert [row.final_recipient for row in report.recipients] == ["bob@example.com",
                                                                  "carol@example.com"]
    bob = report.recipients[0]
    assert bob.status == "5.7.0"
    assert bob.reply_code == "552"
    assert bob.smtp_command == "DATA"
    assert bob.diagnostic_code.startswith("552-5.7.0 This message was blocked")
    assert bob.diagnostic_code.endswith("potential security issue. Please review the attachment "
                                        "guidelines of the receiving site.")
    assert bob.remote_mta == "mx.example.com"


def test_sendmail_pipelined_rcpt_reply():
    # The reply under ">>> DATA" that names a recipient is the reply to its pipelined RCPT.
    report = decode_fixture("sendmail-dsn.eml")

    carol = report.recipients[1]
    assert carol.status == "5.1.1"
    assert carol.reply_code == "550"
    assert carol.smtp_command == "RCPT"
    assert carol.diagnostic_code == "550 5.1.1 <carol@example.com>... User unknown"


def test_sendmail_headers_part_original():
    report = decode_fixture("sendmail-dsn.eml")

    assert report.original_message_id == "<invoice-42@example.net>"
    assert report.subject == "Invoice 42"


def test_sendmail_exit_code_replaced_by_transcript():
    report = decode_fixture("sendmail-dsn-mailer.eml")

    row = report.recipients[0]
    assert row.final_recipient == "dave@example.net"
    assert row.diagnostic_code == "451 4.0.0 Operating system error"
    assert row.diagnostic_type == "X-UNIX"
    assert row.reply_code == "451"
    # The status comes from the field: Sendmail's own summary line is less specific.
    assert row.status == "4.5.0"
    assert row.status_from_field
    assert row.kind == DELAY


def test_exchange_dsn_fields():
    report = decode_fixture("exchange-dsn.eml")

    row = report.recipients[0]
    assert row.final_recipient == "erin@contoso.example.com"
    assert row.status == "5.1.10"
    assert row.reply_code == "550"
    assert row.smtp_command == ""
    assert row.diagnostic_code.startswith("550 5.1.10 RESOLVER.ADR.RecipientNotFound")
    assert row.reporting_mta == "EXCH01.contoso.example.com"
    assert report.subject == "Meeting notes"


def test_groups_without_blank_lines():
    report = decode_fixture("rfc3464-no-blank-lines.eml")

    rows = {row.final_recipient: row for row in report.recipients}
    assert list(rows) == ["frank@example.com", "grace@example.com", "heidi@example.com"]
    assert rows["frank@example.com"].status == "5.2.2"
    assert rows["frank@example.com"].reply_code == "552"
    assert rows["grace@example.com"].status == "5.1.1"
    assert rows["grace@example.com"].diagnostic_code.endswith("User unknown")
    assert rows["heidi@example.com"].kind == DELAY
    assert rows["heidi@example.com"].reply_code == "421"
    assert rows["heidi@example.com"].remote_mta == "mx2.example.com"
    assert all(row.reporting_mta == "relay.example.org" for row in rows.values())


def test_action_before_final_recipient():
    groups = field_groups("Reporting-MTA: dns; mx.example.org\n\n"
                          "Action: failed\nFinal-Recipient: rfc822; a@example.org\n"
                          "Status: 5.1.1\n")
    assert len(groups) == 2
    assert groups[1]["action"] == "failed"
    assert groups[1]["final-recipient"] == "rfc822; a@example.org"


def test_embedded_dsn_without_mime():
    report = decode_fixture("rfc3464-embedded.eml")

    row = report.recipients[0]
    assert row.final_recipient == "ivan@example.net"
    assert row.status == "5.1.1"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 5.1.1 <ivan@example.net>... User unknown"
    assert report.original_message_id == "<lunch-19@example.net>"
    assert report.subject == "Lunch"


def test_embedded_dsn_quoted_forward():
    text = ("Begin forwarded message:\n\n"
            "> Reporting-MTA: dns; mx.example.net\n>\n"
            "> Final-Recipient: RFC822; kim@example.com\n"
            "> Action: failed\n> Status: 5.1.1\n"
            "> Return-Path: <sender@example.net>\n")
    embedded = find_embedded(text)

    assert embedded is not None
    groups = field_groups(embedded.fields)
    assert groups[-1]["final-recipient"] == "RFC822; kim@example.com"
    assert "return-path" not in groups[-1]


def test_quoted_local_part_kept():
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
           b"--B\nContent-Type: message/delivery-status\n\n"
           b"Reporting-MTA: dns; mx.example.net\n\n"
           b'Final-Recipient: rfc822; "first..last"@Example.COM\n'
           b"Action: failed\nStatus: 5.1.1\n--B--\n")
    report = rfc3464.decode(Message(raw))

    assert report.recipients[0].final_recipient == '"first..last"@example.com'


def test_local_final_recipient_uses_original():
    raw = (b"Content-Type: multipart/report; report-type=delivery-status; boundary=B\n\n"
           b"--B\nContent-Type: message/delivery-status\n\n"
           b"Reporting-MTA: dns; mx.example.net\n\n"
           b"Original-recipient: rfc822;lee@example.net\n"
           b"Final-recipient: rfc822;@lmtp.example.net:lee@server\n"
           b"Action: failed\nStatus: 5.2.0\n--B--\n")
    report = rfc3464.decode(Message(raw))

    assert report.recipients[0].final_recipient == "lee@example.net"


@pytest.mark.parametrize("payload", [
    b"",
    b"Content-Type: multipart/report; boundary=B\n\n--B\nContent-Type: message/delivery-status\n\n",
    b"Content-Type: multipart/report; boundary=B\n\n--B\nContent-Type: message/delivery-status\n\n"
    b"Final-Recipient: rfc822;\nAction: failed\n",
    b"Final-Recipient: " + b"x" * 20000 + b"\n",
    b"> Final-Recipient: rfc822; a@example.org\n" * 50,
])
def test_malformed_input_does_not_crash(payload):
    report = rfc3464.decode(Message(payload))

    assert report is None or all("@" in row.final_recipient for row in report.recipients)
