"""Abuse and complaint reports in the Abuse Reporting Format (RFC 5965), as sent by feedback
loops at Yahoo, AOL, Microsoft and others, and Microsoft's older reports that predate ARF.

The machine-readable part is a `message/feedback-report` entity such as

    Feedback-Type: abuse
    User-Agent: SomeGenerator/1.0
    Version: 1
    Original-Rcpt-To: <kijitora@example.org>

Quirks handled: a report without Original-Rcpt-To names the complaining recipient in its
Removal-Recipient field or only as the To of the returned message. Some generators label the
report part `text/plain` inside a `multipart/report; report-type=feedback-report`. Hotmail's
reports from before ARF (From staff@hotmail.com, Subject "complaint about message from
192.0.2.1") carry no report part but mark the complaining recipient in the returned message:

    X-HmXmrOriginalRecipient: <kijitora@example.com>
"""

from __future__ import annotations

from bouncewise.decode.fields import FEEDBACK, RecipientFields, Report
from bouncewise.decode.delivery_status import host_name
from bouncewise.decode.notice import original_recipients
from bouncewise.mail.headers import first_address, parse_date_utc, parse_header_block
from bouncewise.mail.message import Message, Part, split_head

NAME = "arf"

# The header Hotmail adds to a returned message to name the recipient who complained.
_HOTMAIL_RECIPIENT = "x-hmxmroriginalrecipient"


def decode(message: Message) -> Report | None:
    """Decode a feedback report, or return None if the message is not one."""
    report_part = _find_report_part(message)
    if report_part is None:
        return _decode_hotmail(message)

    head, _ = split_head(report_part.payload().lstrip(b"\n") + b"\n\n", message.limits)
    fields = parse_header_block(head, message.limits)

    def field(name: str) -> str:
        values = fields.get(name)
        return values[0] if values else ""

    recipients = [first_address(value) for value in fields.get("original-rcpt-to", [])]
    recipients = [address for address in recipients if address]
    if not recipients and field("removal-recipient"):
        recipients = [first_address(field("removal-recipient"))]
    if not recipients:
        recipients = original_recipients(message)[:1]
    if not recipients:
        recipients = [""]

    feedback_type = field("feedback-type").strip().lower()
    report = Report(decoded_by=NAME, sender=first_address(field("original-mail-from")))
    for recipient in recipients:
        report.recipients.append(RecipientFields(
            final_recipient=recipient,
            reporting_mta=host_name(field("reporting-mta")),
            last_attempt_date=parse_date_utc(field("arrival-date") or field("received-date")),
            kind=FEEDBACK,
            feedback_type=feedback_type,
            diagnostic_code=field("feedback-type").strip(),
        ))
    return report


def _find_report_part(message: Message) -> Part | None:
    for part in message.walk():
        if part.content_type == "message/feedback-report":
            return part

    # Some generators label the report part text/plain; trust it only inside a feedback report.
    if (message.content_type != "multipart/report"
            or message.param("report-type").lower() != "feedback-report"):
        return None
    for part in message.children()[1:]:
        if part.content_type == "text/plain" and _starts_with_feedback_type(part):
            return part
    return None


def _starts_with_feedback_type(part: Part) -> bool:
    head = part.payload()[: part.limits.max_report_scan].lstrip().lower()
    return head.startswith(b"feedback-type:") or b"\nfeedback-type:" in head


def _decode_hotmail(message: Message) -> Report | None:
    """Decode Hotmail's complaint report from before ARF, or return None."""
    recipient = _hotmail_recipient(message)
    if not recipient:
        return None

    report = Report(decoded_by=NAME)
    report.recipients.append(RecipientFields(
        final_recipient=recipient,
        kind=FEEDBACK,
        feedback_type="abuse",
        diagnostic_code=message.decoded_header("subject").strip(),
    ))
    return report


def _hotmail_recipient(message: Message) -> str:
    for part in message.walk():
        if part is not message and part.header(_HOTMAIL_RECIPIENT):
            return first_address(part.header(_HOTMAIL_RECIPIENT))

    # The returned message may sit inline in a text body instead of its own MIME part.
    body = message.body[: message.limits.max_scan_text]
    position = body.lower().find(_HOTMAIL_RECIPIENT.encode() + b":")
    if position < 0:
        return ""
    line = body[position : body.find(b"\n", position) if b"\n" in body[position:] else None]
    return first_address(line.decode("utf-8", "replace").partition(":")[2])
