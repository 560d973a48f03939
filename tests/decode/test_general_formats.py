"""Bounces of MTAs and gateways that the labelled corpus lacks, on fixtures written for these tests.

Each fixture imitates the layout its MTA writes, with example addresses. The checks are the ones
that matter to a list sender: the failed recipient, a reason in the right family, and the codes
where the bounce gives them.
"""

from pathlib import Path

import pytest

import bouncewise
from bouncewise.decode import decode_message
from bouncewise.mail.message import Message

GENERAL = Path(__file__).resolve().parent.parent / "fixtures" / "general"

USER_UNKNOWN = {"userunknown", "filtered"}
MAILBOX_FULL = {"mailboxfull"}
SPAM = {"spamdetected", "blocked"}
BLOCKED = {"blocked", "badreputation"}
AUTH = {"authfailure"}
SIZE = {"mesgtoobig", "exceedlimit"}

CASES = [
    # fixture, recipient, accepted reasons, status, reply code ("" where the bounce gives none)
    ("domino-mailbox-full.eml", "bettina.kraus@example.org", MAILBOX_FULL, "5.2.2", "552"),
    ("courier-user-unknown.eml", "carla@example.net", USER_UNKNOWN, "5.1.1", "550"),
    ("courier-maildir-quota.eml", "dirk@example.org", MAILBOX_FULL, "5.0.0", ""),
    ("zimbra-over-quota.eml", "elke@example.org", MAILBOX_FULL, "5.2.2", "552"),
    ("zoho-spam.eml", "felix@example.net", SPAM, "5.7.1", "550"),
    ("zoho-user-unknown.eml", "gina@example.net", USER_UNKNOWN, "5.1.1", "550"),
    ("exchange2016-user-unknown.eml", "hanna.vogel@corp.example.com", USER_UNKNOWN, "5.1.10",
     "550"),
    ("exchange2010-mailbox-full.eml", "ivo.lange@corp.example.org", MAILBOX_FULL, "5.2.2", "554"),
    ("exchange2013-size-limit.eml", "jana.roth@corp.example.net", SIZE, "5.3.4", "550"),
    ("trendmicro-imss-blocklist.eml", "karl@example.org", BLOCKED, "5.7.1", "554"),
    ("mcafee-spam.eml", "lina@example.org", SPAM, "5.7.1", "554"),
    ("mimecast-dmarc.eml", "max.weber@example.org", AUTH, "5.7.1", "550"),
    ("barracuda-spam.eml", "otto@example.org", SPAM, "5.7.1", "554"),
    ("hmailserver-user-unknown.eml", "paula@example.org", USER_UNKNOWN, "5.1.1", "550"),
    ("mailenable-mailbox-full.eml", "quentin@example.org", MAILBOX_FULL, "5.2.2", "552"),
    ("kerio-user-unknown.eml", "rolf@example.org", USER_UNKNOWN, "5.1.1", "550"),
    ("kerio-text-mailbox-full.eml", "sonja@example.org", MAILBOX_FULL, "", ""),
    ("gmx-user-unknown.eml", "tim.schulz@example.org", USER_UNKNOWN, "5.1.1", "550"),
    ("webde-german-mailbox-full.eml", "ulla.meier@example.org", MAILBOX_FULL, "5.2.2", "552"),
    ("exim-german-spam.eml", "volker@example.org", SPAM, "5.7.1", "550"),
    ("french-non-remis.eml", "wanda.leroy@example.net", USER_UNKNOWN, "5.1.1", "550"),
    ("french-message-origine.eml", "xavier@example.net", SIZE, "5.3.4", "552"),
    ("mailman-wrapped-postfix.eml", "yusuf@example.net", USER_UNKNOWN, "5.1.1", "550"),
    ("mailman3-wrapped-exim.eml", "zara@example.org", BLOCKED, "5.7.1", "550"),
]

# Bounces that need the judge to weigh the SMTP stage or a directory's wording.
JUDGE_CASES = [
    ("domino-user-unknown.eml", "anton.berg@example.org", USER_UNKNOWN, "", ""),
    ("proofpoint-blocklist.eml", "nora@example.org", BLOCKED, "5.7.1", "554"),
]


def classify_one(name):
    return bouncewise.classify(GENERAL / name)


def decode(name):
    return decode_message(Message((GENERAL / name).read_bytes()))


@pytest.mark.parametrize(("name", "recipient", "reasons", "status", "reply_code"),
                         CASES + JUDGE_CASES)
def test_general_format_result(name, recipient, reasons, status, reply_code):
    [result] = classify_one(name)

    assert result.recipient == recipient
    assert result.reason in reasons
    if status:
        assert result.status == status
    assert result.reply_code == reply_code


@pytest.mark.parametrize("name", ["zoho-spam.eml", "mcafee-spam.eml", "barracuda-spam.eml",
                                  "exim-german-spam.eml"])
def test_spam_refusal_never_userunknown(name):
    [result] = classify_one(name)

    assert result.reason != "userunknown"
    assert result.hard_bounce is False


def test_domino_reply_after_because():
    [row] = decode("domino-user-unknown.eml").recipients

    assert row.diagnostic_code == ("User anton.berg (anton.berg@example.org) not listed in "
                                   "Domino Directory")


def test_exchange_reply_without_quotes():
    [row] = decode("exchange2013-size-limit.eml").recipients

    assert row.diagnostic_code == ("550 5.3.4 ROUTING.SizeLimit; message size exceeds fixed "
                                   "maximum size for route")


def test_exchange_local_failure_without_hashes():
    [row] = decode("exchange2010-mailbox-full.eml").recipients

    assert row.diagnostic_code.startswith("554 5.2.2 mailbox full;")
    assert not row.diagnostic_code.endswith("#")


def test_sendmail_reason_without_bracket():
    [row] = decode("proofpoint-blocklist.eml").recipients

    assert row.diagnostic_code == ("554 5.7.1 Blocked - see "
                                   "https://ipcheck.proofpoint.com/?ip=192.0.2.10")


def test_zoho_rebuilds_reply():
    [row] = decode("zoho-user-unknown.eml").recipients

    assert decode("zoho-user-unknown.eml").decoded_by == "zoho"
    assert row.diagnostic_code.startswith("550 5.1.1 <gina@example.net>: Recipient address")
    assert row.diagnostic_code.endswith("(Invalid Address)")
    assert "Received:" not in row.diagnostic_code


@pytest.mark.parametrize(("name", "marker_text"), [
    ("webde-german-mailbox-full.eml", "Original-Nachricht"),
    ("exim-german-spam.eml", "Kopie der Nachricht"),
    ("french-message-origine.eml", "Message d'origine"),
])
def test_localised_marker_cuts_notice(name, marker_text):
    [row] = decode(name).recipients

    assert marker_text not in row.diagnostic_code
    assert "newsletter@" not in row.diagnostic_code


@pytest.mark.parametrize(("name", "inner"), [
    ("mailman-wrapped-postfix.eml", "rfc3464"),
    ("mailman3-wrapped-exim.eml", "exim"),
])
def test_mailman_reads_attached_bounce(name, inner):
    report = decode(name)

    assert report.decoded_by == f"mailman:{inner}"
    assert len(report.recipients) == 1
    assert "@lists.example.com" not in report.recipients[0].final_recipient


def test_mailman_notice_without_attachment():
    raw = (b"From: announce-owner@lists.example.com\nTo: announce-owner@lists.example.com\n"
           b"Subject: Uncaught bounce notification\n\n"
           b"The attached message was received as a bounce, but the attachment is missing.\n")

    assert decode_message(Message(raw)) is None
