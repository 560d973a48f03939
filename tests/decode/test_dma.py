"""DragonFly Mail Agent notices, on fixtures written for these tests."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def decode(name):
    return decode_message(Message((FIXTURES / name).read_bytes()))


def test_dma_multiline_reply():
    report = decode("dma-final-data.eml")

    assert report.decoded_by == "dma"
    [row] = report.recipients
    assert row.final_recipient == "sam@example.com"
    assert row.status == "5.7.26"
    assert row.reply_code == "550"
    assert row.smtp_command == "DATA"
    assert row.remote_mta == "mx.example.com"
    assert row.diagnostic_code.startswith("550-5.7.26 This mail has been blocked")
    assert row.diagnostic_code.endswith("your domain. See the postmaster pages for details.")
    assert "550 5.7.26" not in row.diagnostic_code


def test_dma_local_error_keeps_postmaster():
    report = decode("dma-dns.eml")

    [row] = report.recipients
    assert row.final_recipient == "postmaster@missing.example.org"
    assert row.reply_code == ""
    assert row.diagnostic_code == "DNS lookup failure: host missing.example.org not found"
