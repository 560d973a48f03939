"""The judge on bare SMTP replies as large providers and common filters write them."""

from __future__ import annotations

import pytest

from bouncewise import explain

# (reply, expected reason). Replies are written in the form each provider or filter uses.
REPLIES = [
    # Spam and content filters.
    ("550 5.7.1 Message rejected as spam by Content Filtering.", "spamdetected"),
    ("550 5.7.1 Message refused as spam", "spamdetected"),
    ("554 5.7.1 [P4] Message blocked due to spam content in the message.", "spamdetected"),
    ("550-5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce "
     "the amount of spam sent to Gmail, this message has been blocked.", "spamdetected"),
    ("550 5.7.350 Remote server returned message detected as spam", "spamdetected"),
    ("554 5.7.1 The message from (<a@example.com>) with the subject of (Offer) matches a profile "
     "the Internet community may consider spam.", "spamdetected"),
    ("550 High probability of spam", "spamdetected"),
    ("554 5.7.0 Reject, id=12345-01 - spam", "spamdetected"),
    ("550 5.7.1 Blacklisted URL in message. (example.com) in [black]", "spamdetected"),
    # Viruses.
    ("554 5.7.1 Your message was rejected because it contains a virus", "virusdetected"),
    ("550 5.7.0 Message rejected: infected by Eicar-Test-Signature", "virusdetected"),
    ("552 5.7.0 This message was blocked because its content presents a potential security issue.",
     "policyviolation"),
    # Blocklists and the sending IP.
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org",
     "blocked"),
    ("550 5.7.606 Access denied, banned sending IP [192.0.2.1]. To request removal from this list "
     "please visit https://sender.office.com/", "blocked"),
    ("554 Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation",
     "blocked"),
    ("421 4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred due to unexpected volume or "
     "user complaints", "badreputation"),
    ("550 5.7.1 Connection rejected: IP address 192.0.2.1 is listed in bl.spamcop.net", "blocked"),
    ("550-5.7.1 [192.0.2.1] Our system has detected that this message is likely suspicious due to "
     "the very low reputation of the sending IP address.", "badreputation"),
    # Sender authentication and the sending host's set-up.
    ("550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC "
     "policy.", "authfailure"),
    ("550 5.7.23 The message was rejected because of Sender Policy Framework violation",
     "authfailure"),
    ("550 5.7.25 The IP address sending this message does not have a PTR record setup",
     "requireptr"),
    ("450 4.7.1 Client host rejected: cannot find your reverse hostname, [192.0.2.1]",
     "requireptr"),
    ("530 5.7.0 Must issue a STARTTLS command first", "failedstarttls"),
    ("554 5.7.1 <a@example.org>: Relay access denied", "norelaying"),
    ("553 5.7.1 <a@example.com>: Sender address rejected: not owned by user b@example.com",
     "rejected"),
    # The recipient's address and mailbox.
    ("550 5.1.1 <a@example.org>: Recipient address rejected: User unknown in virtual mailbox table",
     "userunknown"),
    ("550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos", "userunknown"),
    ("550 5.5.0 Requested action not taken: mailbox unavailable", "userunknown"),
    ("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
     "userunknown"),
    ("552 5.2.2 The email account that you tried to reach is over quota.", "mailboxfull"),
    ("452 4.2.2 Mailbox full", "mailboxfull"),
    ("550 5.2.1 The email account that you tried to reach is disabled.", "suspend"),
    ("550 5.1.2 Host unknown: no such domain", "hostunknown"),
    ("556 5.1.10 Recipient address has null MX", "notaccept"),
    ("552 5.3.4 Message size exceeds fixed maximum message size", "mesgtoobig"),
    # Rate and load.
    ("421 4.7.0 Too many concurrent SMTP connections from this IP address; please try again later.",
     "toomanyconn"),
    ("450 4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
     "additional messages from being delivered.", "speeding"),
]


@pytest.mark.parametrize(("reply", "reason"), REPLIES)
def test_explain_reason(reply, reason):
    assert explain(reply).reason == reason


SPAM_LIKE = [reply for reply, reason in REPLIES
             if reason in ("spamdetected", "blocked", "badreputation", "virusdetected")]


@pytest.mark.parametrize("reply", SPAM_LIKE)
def test_spam_refusal_never_hard_bounce(reply):
    verdict = explain(reply)
    assert verdict.hard_bounce is False
    assert verdict.category in ("spam-block", "virus")


def test_spam_text_outweighs_address_code():
    verdict = explain("550 5.1.1 Message rejected as spam")
    assert verdict.reason == "spamdetected"
    assert verdict.hard_bounce is False


def test_unknown_user_is_hard_bounce():
    verdict = explain("550 5.1.1 <a@example.org>: Recipient address rejected: User unknown")
    assert verdict.category == "bad-address"
    assert verdict.hard_bounce is True


def test_temporary_unknown_domain_is_not_hard():
    verdict = explain("450 4.1.2 <a@example.invalid>: Recipient address rejected: Domain not found")
    assert verdict.hard_bounce is False


def test_reply_codes_read():
    verdict = explain("550 5.7.1 Message rejected as spam")
    assert verdict.reply_code == "550"
    assert verdict.status == "5.7.1"


def test_status_derived_when_absent():
    verdict = explain("550 User unknown")
    assert verdict.status.startswith("5.")


def test_every_verdict_has_advice():
    for reply, _ in REPLIES:
        assert explain(reply).advice


# Replies that once came out wrong because a phrase or a rule was too general.
NARROWED = [
    ("550 5.7.1 Our system does not accept mail from senders listed on Spamhaus", "blocked"),
    ("554 5.7.1 Message moved to quarantine by policy", "policyviolation"),
    ("550 5.7.1 Requested action not taken: mailbox unavailable. Your IP 203.0.113.5 is listed on "
     "zen.spamhaus.org", "blocked"),
    ("550 5.1.1 Recipient not listed in directory", "userunknown"),
    ("550 5.1.2 Unresolvable domain name", "hostunknown"),
    ("451 4.7.1 Greylisted, please try again in 5 minutes", "systemerror"),
    ("451 4.3.0 Virus scanner temporarily unavailable", "systemerror"),
    ("550 5.4.5 Daily sending quota exceeded", "speeding"),
    ("550 5.7.1 Rejected, see https://www.spamhaus.org/query/ip/203.0.113.5", "blocked"),
    ("250 2.0.0 Ok: queued as 4F2A1", "delivered"),
]


@pytest.mark.parametrize(("reply", "reason"), NARROWED)
def test_explain_narrowed_phrase(reply, reason):
    assert explain(reply).reason == reason


def test_english_for_mail_is_no_command():
    verdict = explain("550 5.1.1 <bob@example.com>: Recipient address rejected: no such user for "
                      "mail domain example.com")
    assert verdict.smtp_command == ""
    assert verdict.reason == "userunknown"


def test_bare_user_unknown_keeps_reason():
    assert explain("550 No such user here").reason == "userunknown"


def test_temporary_unknown_user_not_hard():
    verdict = explain("450 4.1.1 <b@example.org>: Recipient address rejected: User unknown")
    assert verdict.reason == "userunknown"
    assert verdict.hard_bounce is False


def test_temporary_unknown_domain_without_status():
    verdict = explain("451 Domain not found")
    assert verdict.reason == "networkerror"
    assert verdict.hard_bounce is False


def test_weak_spam_word_outweighs_address_code():
    from bouncewise.judge import Evidence, judge

    verdict = judge(Evidence(status="5.1.1", status_from_field=True, from_report=True,
                             diagnostic="550 5.1.1 Message refused: spam"))
    assert verdict.reason == "spamdetected"
    assert verdict.hard_bounce is False


def test_final_notice_after_4xx_is_hard():
    from bouncewise.judge import Evidence, judge

    verdict = judge(Evidence(status="4.1.1", from_report=True, kind="failure", action="failed",
                             diagnostic="450 4.1.1 <b@example.org>: Recipient address rejected: "
                                        "User unknown (in reply to RCPT TO command)"))
    assert verdict.reason == "userunknown"
    assert verdict.hard_bounce is True
