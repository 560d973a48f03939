"""Abuse and complaint reports in the Abuse Reporting Format (RFC 5965), as sent by feedback
loops at Yahoo, AOL, Microsoft and others.

The machine-readable part is a `message/feedback-report` entity such as

    Feedback-Type: abuse
    User-Agent: SomeGenerator/1.0
    Version: 1
    Original-Rcpt-To: <kijitora@example.org>

Quirks handled: reports without Original-Rcpt-To, where the complaining recipient is the To of
the returned message or of the report's Removal-Recipient field.
"""

from __future__ import annotations

from bouncewise.decode.fields import FEEDBACK, RecipientFields, Report
from bouncewise.decode.notice import original_recipients
from bouncewise.mail.headers import first_address, parse_date_utc
from bouncewise.mail.message import Message, Part, split_head
from bouncewise.mail.headers import parse_header_block

NAME = "arf"


def decode(message: Message) -> Report | None:
    """Decode a feedback report, or return None if the message is not one."""
    report_part = _find_report_part(message)
    if report_part is None:
        return None

    head, _ = split_head(report_part.payload().lstrip(b"\n") + b"\n\n", message.limits)
    fields = parse_header_block(head, message.limits)

    def field(name: str) -> str:
        values = fields.get(name)
        return values[0] if values else ""

    recipients = [first_address(value) for value in fields.get("original-rcpt-to", [])]
    recipients = [address for address in recipients if address]
    if not recipients:
        recipients = [first_address(field("removal-recipient"))] if field("removal-recipient") else []
    if not recipients:
        recipients = original_recipients(message)[:1]
    if not recipients:
        recipients = [""]

    report = Report(decoded_by=NAME, sender=first_address(field("original-mail-from")))
    for recipient in recipients:
        report.recipients.append(RecipientFields(
            final_recipient=recipient,
            reporting_mta=field("reporting-mta").partition(";")[2].strip() or field("reporting-mta"),
            last_attempt_date=parse_date_utc(field("arrival-date") or field("received-date")),
            kind=FEEDBACK,
            feedback_type=field("feedback-type").strip().lower(),
            diagnostic_code=field("feedback-type"),
        ))
    return report


def _find_report_part(message: Message) -> Part | None:
    for part in message.walk():
        if part.content_type == "message/feedback-report":
            return part
    return None
