"""Decoders for Yahoo, au (ezweb), Messaging Server, Apache James, Verizon MMS, fml and
Sendmail V5 notices, and for automatic replies."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode_fixture(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_yahoo_remote_host_and_colon_code():
    report = decode_fixture("yahoo-remote-host.eml")
    assert report.decoded_by == "yahoo"
    first, second = report.recipients

    assert first.final_recipient == "dave@example.org"
    assert first.status == "5.2.2"
    assert first.reply_code == "552"
    assert first.diagnostic_code == "552 5.2.2 <dave@example.org>... Mailbox over quota"
    assert first.smtp_command == "RCPT"

    assert second.final_recipient == "erin@example.org"
    assert second.status == "5.7.1"
    assert second.reply_code == "553"
    assert "Sender rejected by policy" in second.diagnostic_code
    assert "dave@example.org" not in second.diagnostic_code


def test_ezweb_transcript():
    report = decode_fixture("ezweb-transcript.eml")
    assert report.decoded_by == "ezweb"
    [row] = report.recipients
    assert row.final_recipient == "mallory@example.org"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 <mallory@example.org>: Recipient address rejected: unknown user"
    assert row.smtp_command == "RCPT"


def test_ezweb_sentence_without_transcript():
    [row] = decode_fixture("ezweb-disabled.eml").recipients
    assert row.final_recipient == "niaj@example.org"
    assert row.reply_code == ""
    assert row.diagnostic_code == "The user(s) account is disabled."


def test_messagingserver_blocks_and_source_route():
    report = decode_fixture("messagingserver-two.eml")
    assert report.decoded_by == "messagingserver"
    first, second = report.recipients

    assert first.final_recipient == "olivia@example.org"
    assert first.status == "5.1.1"
    assert first.reply_code == "550"
    assert first.diagnostic_code == "550 5.1.1 <olivia@example.org>... User unknown"
    assert first.remote_mta == "mx.example.org"

    assert second.final_recipient == "peggy@example.net"
    assert second.status == "5.2.2"
    assert second.reply_code == "552"
    assert "Over quota" in second.diagnostic_code


def test_apachejames_unsplittable_part():
    report = decode_fixture("apachejames-rcpt.eml")
    assert report.decoded_by == "apachejames"
    [row] = report.recipients
    assert row.final_recipient == "rupert@example.org"
    assert row.reply_code == "550"
    assert row.diagnostic_code == "550 - Requested action not taken: no such user here"


def test_verizon_mms_gateway():
    report = decode_fixture("verizon-mms.eml")
    assert report.decoded_by == "verizon"
    [row] = report.recipients
    assert row.final_recipient == "5555550100@mms.example.com"
    assert row.status == ""
    assert row.diagnostic_code == "No valid recipients for this MM"


def test_fml_loop_alert():
    report = decode_fixture("fml-loop-alert.eml")
    assert report.decoded_by == "fml"
    [row] = report.recipients
    assert row.final_recipient == "staff@example.org"
    assert row.diagnostic_code.startswith("Loop Alert: Duplicated Message-ID")
    assert "Agenda" not in row.diagnostic_code


def test_fml_list_post_is_no_bounce():
    assert decode_fixture("fml-post.eml") is None


def test_sendmail_v5_transcript():
    report = decode_fixture("sendmail_v5-transcript.eml")
    assert report.decoded_by == "sendmail_v5"
    first, second = report.recipients

    assert first.final_recipient == "sybil@example.org"
    assert first.reply_code == "550"
    assert first.diagnostic_code == "550 <sybil@example.org>, Recipient unknown here"
    assert first.smtp_command == "RCPT"
    assert first.remote_mta == "mail.example.org"

    assert second.final_recipient == "trent@example.com"
    assert second.reply_code == "550"
    assert second.diagnostic_code == "550 Host unknown (Authoritative answer from name server)"


def test_sendmail_v5_host_only():
    [row] = decode_fixture("sendmail_v5-host.eml").recipients
    assert row.final_recipient == "victor@example.org"
    assert row.reply_code == "421"
    assert row.diagnostic_code == "Deferred: Connection timed out during user open with example.org"


def test_autoreply_vacation():
    report = decode_fixture("rfc3834-vacation.eml")
    assert report.decoded_by == "autoreply"
    [row] = report.recipients
    assert row.final_recipient == "walter@example.org"
    assert row.kind == "auto-reply"
