"""Amazon SES and Amazon WorkMail: JSON notifications sent through Amazon SNS, and the DSNs and
plain-text notices that SES and WorkMail mail back.

An SNS notification mails one JSON object, either bare or wrapped in an SNS envelope whose
"Message" field contains the SES object as a string:

    {"notificationType": "Bounce", "bounce": {"bouncedRecipients": [
        {"emailAddress": "kijitora@example.org", "action": "failed", "status": "5.1.1",
         "diagnosticCode": "smtp; 550 5.1.1 user unknown"}], ...}, "mail": {...}}

"Complaint" and "Delivery" notifications give feedback and delivered rows. SES event publishing
writes "eventType" in place of "notificationType".

Quirks: mail relays break the long JSON line with "!" and a line break plus space. SES DSNs wrap
the remote reply in their own words, as in "5.1.0 - Unknown address error 550-'5.7.1 ...'
(delivery attempts: 0)" or "554 4.4.7 Message expired: ... <421 4.4.2 Connection timed out>",
where the codes of the remote reply are the ones that count. WorkMail writes the DSN fields as
text below "Technical report:" in its notice.
"""

from __future__ import annotations

import json
import re

from bouncewise.decode import rfc3464
from bouncewise.decode.fields import DELIVERED, FAILURE, FEEDBACK, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.mail.headers import first_address, normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "amazonses"

_SES_HEADERS = ("x-ses-outgoing", "x-aws-outgoing", "x-amz-sns-message-id")

# "5.3.0 - Other mail system problem 550-'Unknown user ...' (delivery attempts: 0)"
_WRAPPED_REPLY = re.compile(r"^([245]\.\d{1,3}\.\d{1,3}) - [^']{0,200}?([245]\d\d)[- ]'(.{1,2000})'")
# "... Message expired: unable to deliver in 840 minutes.<421 4.4.2 Connection timed out>"
_LAST_REPLY = re.compile(r"<([245]\d\d[ -][^<>]{0,1000})>\s*$")

_WORKMAIL_REPORT = "technical report:"

# SNS breaks JSON lines longer than about 990 characters with "!", a line break and a space.
_LINE_BREAK_ARTIFACT = "!\n "


def decode(message: Message) -> Report | None:
    """Decode an SES or WorkMail notification, or return None if the message is not one."""
    if not _is_amazon(message):
        return None

    if not message.content_type.startswith("multipart/"):
        body = message.text()
        if body.lstrip()[:1] == "{":
            return _decode_notification(body)

    report = rfc3464.decode(message)
    if report is None:
        report = _decode_workmail(message)
    if report is None:
        return None
    report.decoded_by = NAME
    for recipient in report.recipients:
        _unwrap_reply(recipient)
    return report


def _is_amazon(message: Message) -> bool:
    if any(message.header(name) for name in _SES_HEADERS):
        return True
    sender = message.header("from").lower()
    return "amazonses.com" in sender or "sns.amazonaws.com" in sender


def _load_json(text: str) -> dict | None:
    start = text.find("{")
    if start < 0:
        return None
    decoder = json.JSONDecoder(strict=False)
    for candidate in (text[start:], text[start:].replace(_LINE_BREAK_ARTIFACT, "")):
        try:
            value, _ = decoder.raw_decode(candidate)
        except ValueError:
            continue
        return value if isinstance(value, dict) else None
    return None


def _decode_notification(body: str) -> Report | None:
    envelope = _load_json(body)
    if envelope is None:
        return None
    notification = envelope
    if isinstance(envelope.get("Message"), str):
        notification = _load_json(envelope["Message"]) or {}

    kind = str(notification.get("notificationType") or notification.get("eventType") or "")
    readers = {"Bounce": _bounced, "Complaint": _complained, "Delivery": _delivered}
    if kind not in readers:
        return None

    report = Report(decoded_by=NAME)
    report.recipients.extend(readers[kind](notification))
    _fill_mail(report, notification.get("mail"))
    return report if report.recipients else None


def _section(notification: dict, name: str) -> dict:
    value = notification.get(name)
    return value if isinstance(value, dict) else {}


def _entries(section: dict, name: str) -> list:
    value = section.get(name)
    return value if isinstance(value, list) else []


def _bounced(notification: dict) -> list[RecipientFields]:
    bounce = _section(notification, "bounce")
    reporting_mta = _typed_value(str(bounce.get("reportingMTA", "")))
    recipients = []
    for entry in _entries(bounce, "bouncedRecipients"):
        if not isinstance(entry, dict):
            continue
        diagnostic = _typed_value(str(entry.get("diagnosticCode", "")))
        recipient = RecipientFields(
            final_recipient=normalize_address(str(entry.get("emailAddress", ""))),
            action=str(entry.get("action", "failed")).lower(),
            status=find_status(str(entry.get("status", ""))) or find_status(diagnostic),
            reply_code=find_reply_code(diagnostic),
            diagnostic_code=diagnostic,
            diagnostic_type="SMTP" if diagnostic else "",
            remote_mta=str(bounce.get("remoteMtaIp", "")),
            reporting_mta=reporting_mta,
            smtp_command=find_smtp_command(diagnostic),
            last_attempt_date=str(bounce.get("timestamp", "")),
            kind=FAILURE,
        )
        if recipient.final_recipient:
            recipients.append(recipient)
    return recipients


def _complained(notification: dict) -> list[RecipientFields]:
    complaint = _section(notification, "complaint")
    feedback_type = str(complaint.get("complaintFeedbackType", "") or "abuse")
    recipients = []
    for entry in _entries(complaint, "complainedRecipients"):
        address = entry.get("emailAddress", "") if isinstance(entry, dict) else ""
        if address:
            recipients.append(RecipientFields(
                final_recipient=normalize_address(str(address)),
                diagnostic_code=str(complaint.get("userAgent", "")),
                kind=FEEDBACK,
                feedback_type=feedback_type,
            ))
    return recipients


def _delivered(notification: dict) -> list[RecipientFields]:
    delivery = _section(notification, "delivery")
    response = str(delivery.get("smtpResponse", ""))
    recipients = []
    for address in _entries(delivery, "recipients"):
        if isinstance(address, str) and address:
            recipients.append(RecipientFields(
                final_recipient=normalize_address(address),
                action="delivered",
                status=find_status(response),
                reply_code=find_reply_code(response),
                diagnostic_code=response,
                diagnostic_type="SMTP" if response else "",
                remote_mta=str(delivery.get("remoteMtaIp", "")),
                reporting_mta=_typed_value(str(delivery.get("reportingMTA", ""))),
                kind=DELIVERED,
            ))
    return recipients


def _fill_mail(report: Report, mail: object) -> None:
    """Copy the sent message's sender, Message-ID, Subject and time from the "mail" object."""
    if not isinstance(mail, dict):
        return
    report.sender = first_address(str(mail.get("source", "")))
    report.timestamp = str(mail.get("timestamp", ""))
    common = mail.get("commonHeaders")
    if isinstance(common, dict):
        report.subject = str(common.get("subject", ""))
        report.original_message_id = str(common.get("messageId", ""))


def _typed_value(value: str) -> str:
    """Drop the type of `dsn; host` or `smtp; 550 ...`."""
    kind, semicolon, rest = value.partition(";")
    if semicolon and " " not in kind.strip() and len(kind.strip()) <= 16:
        return rest.strip()
    return value.strip()


def _unwrap_reply(recipient: RecipientFields) -> None:
    """Take the status and reply code from the remote reply that SES quotes in its own text."""
    diagnostic = recipient.diagnostic_code
    wrapped = _WRAPPED_REPLY.match(diagnostic)
    if wrapped:
        reply = f"{wrapped.group(2)} {wrapped.group(3).strip()}"
        recipient.diagnostic_code = reply
        recipient.status = find_status(wrapped.group(3)) or wrapped.group(1)
        recipient.reply_code = wrapped.group(2)
        return

    last = _LAST_REPLY.search(diagnostic)
    if last:
        recipient.status = find_status(last.group(1)) or recipient.status
        recipient.reply_code = last.group(1)[:3]


def _decode_workmail(message: Message) -> Report | None:
    notice = notice_text(message)
    position = notice.lower().find(_WORKMAIL_REPORT)
    if position < 0:
        return None

    report = Report(decoded_by=NAME)
    reporting_mta = ""
    for group in _field_groups(notice[position + len(_WORKMAIL_REPORT):]):
        reporting_mta = _typed_value(group.get("reporting-mta", "")) or reporting_mta
        recipient = first_address(group.get("final-recipient", ""))
        if not recipient:
            continue
        diagnostic = _typed_value(group.get("diagnostic-code", ""))
        report.recipients.append(RecipientFields(
            final_recipient=recipient,
            action=group.get("action", "failed").lower(),
            status=find_status(group.get("status", "")) or find_status(diagnostic),
            reply_code=find_reply_code(diagnostic),
            diagnostic_code=diagnostic,
            diagnostic_type="SMTP" if diagnostic else "",
            remote_mta=_typed_value(group.get("remote-mta", "")),
            reporting_mta=reporting_mta,
            smtp_command=find_smtp_command(diagnostic),
        ))
    return report if report.recipients else None


def _field_groups(text: str) -> list[dict[str, str]]:
    """Read `Name: value` lines into groups separated by blank lines, with folded lines joined."""
    groups: list[dict[str, str]] = [{}]
    name = ""
    for line in text.split("\n"):
        if not line.strip():
            if groups[-1]:
                groups.append({})
            name = ""
            continue
        if line[:1] in (" ", "\t") and name:
            groups[-1][name] += " " + line.strip()
            continue
        field_name, colon, value = line.partition(":")
        if not colon or " " in field_name.strip():
            name = ""
            continue
        name = field_name.strip().lower()
        groups[-1][name] = value.strip()
    return [group for group in groups if group]
