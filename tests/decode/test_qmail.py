"""qmail notices and their imitators, on fixtures written for these tests."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_qmail_remote_replies():
    report = decode("qmail-remote.eml")

    assert report.decoded_by == "qmail"
    assert [row.final_recipient for row in report.recipients] == [
        "kim@example.org", "leo@example.com", "mia@example.net"]
    kim, leo, mia = report.recipients
    assert (kim.status, kim.reply_code, kim.smtp_command) == ("5.1.1", "550", "RCPT")
    assert kim.remote_mta == "192.0.2.60"
    assert kim.diagnostic_code == ("550 5.1.1 <kim@example.org>: Recipient address rejected: "
                                   "User unknown")
    assert (leo.status, leo.reply_code, leo.smtp_command) == ("5.7.1", "554", "DATA")
    assert leo.diagnostic_code == "554 5.7.1 Message rejected because it contains a virus"
    assert (mia.status, mia.reply_code, mia.smtp_command) == ("5.1.8", "553", "MAIL")
    assert mia.remote_mta == "203.0.113.62"


def test_qmail_drops_queue_trailer():
    report = decode("qmail-remote.eml")

    mia = report.recipients[2]
    assert "queue too long" not in mia.diagnostic_code
    assert mia.diagnostic_code == ("553 5.1.8 <sender@example.net>: Sender address rejected: "
                                   "Domain not found")


def test_qmail_local_errors():
    report = decode("qmail-local.eml")

    nina, omar = report.recipients
    assert nina.final_recipient == "nina@example.net"
    assert nina.status == "5.1.1"
    assert nina.reply_code == ""
    assert nina.diagnostic_code == "Sorry, no mailbox here by that name. (#5.1.1)"
    assert omar.final_recipient == "omar@example.org"
    assert omar.status == "4.4.1"
    assert omar.diagnostic_code == "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)"


def test_x2_qmail_like_notice():
    report = decode("x2-qmail-like.eml")

    assert report.decoded_by == "qmail"
    pat, quinn = report.recipients
    assert pat.final_recipient == "pat@example.com"
    assert "over quota" in pat.diagnostic_code
    assert quinn.final_recipient == "quinn@example.com"
    assert "disabled or discontinued" in quinn.diagnostic_code


def test_x4_qmail_like_notice():
    report = decode("x4-qmail-like.eml")

    assert report.decoded_by == "qmail"
    [row] = report.recipients
    assert row.final_recipient == "rosa@example.com"
    assert "mailfolder is full" in row.diagnostic_code
