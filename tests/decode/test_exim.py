"""Exim-style notices: Exim itself, Mail.Ru, MXLogic and 1&1, on fixtures written for these tests."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.decode.fields import DELAY
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_exim_two_recipients():
    report = decode("exim-rcpt.eml")

    assert report.decoded_by == "exim"
    assert [row.final_recipient for row in report.recipients] == ["alice@example.org",
                                                                  "bob@example.com"]
    alice, bob = report.recipients
    assert alice.status == "5.1.1"
    assert alice.reply_code == "550"
    assert alice.smtp_command == "RCPT"
    assert alice.remote_mta == "mx1.example.org"
    assert alice.diagnostic_code == ("550 5.1.1 <alice@example.org>: Recipient address rejected: "
                                     "User unknown in virtual mailbox table")
    assert bob.status == "5.3.4"
    assert bob.reply_code == "552"
    assert bob.smtp_command == "DATA"
    assert bob.remote_mta == "mx.example.com"
    assert bob.diagnostic_code == "552 5.3.4 Message size exceeds fixed maximum message size"


def test_exim_reads_returned_message():
    report = decode("exim-rcpt.eml")

    assert report.subject == "Quarterly figures"
    assert report.original_message_id == "<quarterly-1@example.net>"


def test_exim_delay_warning():
    report = decode("exim-delay.eml")

    assert report.decoded_by == "exim"
    [row] = report.recipients
    assert row.final_recipient == "carol@example.org"
    assert row.kind == DELAY
    assert row.status == "4.7.1"
    assert row.reply_code == "451"
    assert row.smtp_command == "MAIL"
    assert row.remote_mta == "mx2.example.org"
    assert row.diagnostic_code == "451 4.7.1 Greylisted, please try again later"


def test_exim_pipe_delivery():
    report = decode("exim-pipe.eml")

    [row] = report.recipients
    assert row.final_recipient == "dave@example.net"
    assert row.diagnostic_type == "X-UNIX"
    assert row.reply_code == ""
    assert row.diagnostic_code == ("autoresponder: cannot open /var/spool/vacation/dave.db: "
                                   "Permission denied")


def test_exim_status_from_reply_over_dsn():
    report = decode("exim-dsn.eml")

    assert report.decoded_by == "exim"
    [row] = report.recipients
    assert row.final_recipient == "erin@example.com"
    assert row.status == "5.7.1"
    assert not row.status_from_field
    assert row.reply_code == "550"
    assert row.action == "failed"
    assert "no reverse DNS" in row.diagnostic_code


def test_exim_malformed_address():
    report = decode("exim-malformed.eml")

    assert report.decoded_by == "exim"
    [row] = report.recipients
    assert row.final_recipient == "frank@example.org"
    assert row.diagnostic_code.startswith("missing or malformed local part")


def test_mailru_second_copy_not_repeated():
    report = decode("mailru-exim.eml")

    assert report.decoded_by == "exim"
    [row] = report.recipients
    assert row.final_recipient == "grace@example.org"
    assert row.status == "5.2.2"
    assert row.reply_code == "552"
    assert row.smtp_command == "RCPT"
    assert row.diagnostic_code == "552 5.2.2 <grace@example.org>: Mailbox full"


def test_mxlogic_reply_on_address_line():
    report = decode("mxlogic-exim.eml")

    [row] = report.recipients
    assert row.final_recipient == "heidi@example.com"
    assert row.status == "5.1.1"
    assert row.reply_code == "550"
    assert row.diagnostic_code == ("550 5.1.1 <heidi@example.com>: Recipient address rejected: "
                                   "No such mailbox")


def test_einsundeins_reason_paragraph():
    report = decode("einsundeins-exim.eml")

    [row] = report.recipients
    assert row.final_recipient == "ivan@example.org"
    assert row.reply_code == ""
    assert row.diagnostic_code == ("Mail size limit exceeded. For explanation visit "
                                   "http://postmaster.example.net/en/error-messages")


def test_einsundeins_text_command():
    report = decode("einsundeins-text-command.eml")

    [row] = report.recipients
    assert row.final_recipient == "judy@example.com"
    assert row.status == "5.7.1"
    assert row.reply_code == "554"
    assert row.smtp_command == "DATA"
    assert row.remote_mta == "mx.example.com"
    assert row.diagnostic_code == "554 5.7.1 Message rejected as spam"
