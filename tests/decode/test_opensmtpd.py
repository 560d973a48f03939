"""OpenSMTPD notices, plain and with a delivery-status part, on fixtures written for these tests."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.decode.fields import DELAY
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_opensmtpd_one_reply_per_line():
    report = decode("opensmtpd-error.eml")

    assert report.decoded_by == "opensmtpd"
    tara, uma = report.recipients
    assert tara.final_recipient == "tara@example.org"
    assert (tara.status, tara.reply_code) == ("5.1.1", "550")
    assert tara.diagnostic_code == ("550 5.1.1 <tara@example.org>: Recipient address rejected: "
                                    "User unknown")
    assert uma.final_recipient == "uma@example.com"
    assert (uma.status, uma.reply_code) == ("5.2.2", "552")
    assert "uma@example.com" in uma.diagnostic_code
    assert "tara@example.org" not in uma.diagnostic_code


def test_opensmtpd_dsn_status_fallback():
    report = decode("opensmtpd-dsn.eml")

    assert report.decoded_by == "opensmtpd"
    victor, wendy = report.recipients
    assert victor.status == "5.7.25"
    assert not victor.status_from_field
    assert victor.reply_code == "550"
    assert "cannot find your hostname" in victor.diagnostic_code
    assert wendy.final_recipient == "wendy@example.org"
    assert wendy.status == "5.0.0"
    assert wendy.status_from_field
    assert wendy.diagnostic_code == "Domain does not exist"


def test_opensmtpd_delay_notice():
    report = decode("opensmtpd-delayed.eml")

    [row] = report.recipients
    assert row.final_recipient == "xena@example.com"
    assert row.kind == DELAY
    assert (row.status, row.reply_code) == ("4.7.0", "421")
    assert row.diagnostic_code == "421 4.7.0 Try again later, closing connection."
