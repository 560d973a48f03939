"""Bounces written for the ledger's tests, in the shape Postfix writes them (RFC 3464)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime


def postfix_dsn(recipient: str, reply: str, *, to: str = "ann@sender.test",
                sender: str = "ann@sender.test", arrival: datetime | None = None,
                final_recipient: str | None = None, action: str = "failed",
                subject: str = "Our newsletter", message_id: str = "",
                original_date: datetime | None = None) -> bytes:
    """Return a Postfix bounce of a message from `sender` that `recipient`'s server refused
    with `reply`. `to` is the address the bounce is sent to, such as a VERP return path;
    `final_recipient` overrides the address the report names (empty: none)."""
    arrival = arrival or datetime.now(UTC)
    date = arrival.strftime("%a, %d %b %Y %H:%M:%S +0000")
    sent = (original_date or arrival).strftime("%a, %d %b %Y %H:%M:%S +0000")
    status = reply.split()[1] if len(reply.split()) > 1 and reply.split()[1][:2] in (
        "4.", "5.") else "5.0.0"
    named = recipient if final_recipient is None else final_recipient
    queue_id = uuid.uuid4().hex[:10].upper()
    report = [f"Reporting-MTA: dns; mx.sender.test", f"X-Postfix-Queue-ID: {queue_id}",
              f"Arrival-Date: {date}", ""]
    if named:
        report += [f"Final-Recipient: rfc822; {named}", f"Original-Recipient: rfc822;{named}"]
    report += [f"Action: {action}", f"Status: {status}", "Remote-MTA: dns; mx.dest.test",
               f"Diagnostic-Code: smtp; {reply}"]
    notice_name = f"<{named}>" if named else "<>"
    text = f"""Return-Path: <>
Delivered-To: {to}
From: MAILER-DAEMON@mx.sender.test (Mail Delivery System)
To: {to}
Subject: Undelivered Mail Returned to Sender
Date: {date}
Message-Id: <{queue_id}.bounce@mx.sender.test>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="{queue_id}/mx"

--{queue_id}/mx
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.sender.test.

{notice_name}: host mx.dest.test[192.0.2.25] said: {reply} (in reply to end of
    DATA command)

--{queue_id}/mx
Content-Description: Delivery report
Content-Type: message/delivery-status

""" + "\n".join(report) + f"""

--{queue_id}/mx
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Ann <{sender}>
To: {recipient}
Subject: {subject}
Message-ID: {message_id or f"<{queue_id}.original@sender.test>"}
Date: {sent}

--{queue_id}/mx--
"""
    return text.encode()


USER_UNKNOWN = "550 5.1.1 <{0}>: Recipient address rejected: User unknown in local recipient table"
SPAM = "554 5.7.1 Message rejected as spam by the content filter"
MAILBOX_FULL = "552 5.2.2 <{0}>: Mailbox full"
TEMPORARY = "451 4.3.0 Temporary local problem, please try again"
