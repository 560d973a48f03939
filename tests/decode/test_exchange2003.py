"""Exchange 2003 plain-text reports, on a fixture written for these tests."""

from pathlib import Path

from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def test_exchange2003_two_recipients():
    report = decode_message(Message((FIXTURES / "exchange2003-unknown.eml").read_bytes()))

    assert report.decoded_by == "exchange2003"
    yuri, zoe = report.recipients
    assert yuri.final_recipient == "yuri@example.com"
    assert yuri.diagnostic_code == ("The recipient name is not recognized MSEXCH:IMS:Example Corp:"
                                    "Head Office:EXCH01 0 (000C05A6) Unknown Recipient")
    assert "MTS-ID" not in yuri.diagnostic_code
    assert zoe.final_recipient == "zoe@example.com"
    assert (zoe.status, zoe.reply_code) == ("5.1.1", "550")
    assert "does not exist at the organization" in zoe.diagnostic_code
