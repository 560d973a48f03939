"""RFC 3464 delivery status notifications, as sent by Postfix, Sendmail, Exchange, Office 365,
Gmail, Amazon SES, Messaging Server, PowerMTA and most other modern MTAs.

The machine-readable part is a `message/delivery-status` entity: one group of fields about the
message, then one group per recipient, such as

    Final-Recipient: rfc822; kijitora@example.org
    Action: failed
    Status: 5.1.1
    Remote-MTA: dns; mx.example.org
    Diagnostic-Code: smtp; 550 5.1.1 <kijitora@example.org>: Recipient address rejected

Quirks handled: groups run together or come in odd field order (see `delivery_status`). The
entity may be labelled `text/plain`, carried base64-encoded, or written into a plain body (a
mismatched MIME boundary, no MIME headers at all, a forwarded bounce). The Diagnostic-Code may
be missing, a bare exit code ("X-Unix; 77"), or only the first line of a multi-line reply. The
human-readable part (a Sendmail transcript, a Postfix paragraph) then contains the full reply
and is read instead.
The SMTP command and the remote host come from that part when the fields do not give them.
"""

from __future__ import annotations

import re

from bouncewise.config import Limits
from bouncewise.decode.delivery_status import (EmbeddedReport, field_groups, find_embedded,
                                               host_name, is_recipient_group, typed_value)
from bouncewise.decode.fields import DELAY, DELIVERED, FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text, original_recipients
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.decode.transcript import NoticeReply, reply_for, same_reply
from bouncewise.mail.headers import decode_words, first_address, normalize_address, parse_date_utc
from bouncewise.mail.message import Message, Part, decode_bytes
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "rfc3464"

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")

_ACTION_KINDS = {"failed": FAILURE, "delayed": DELAY, "delivered": DELIVERED,
                 "relayed": DELIVERED, "expanded": DELIVERED}

# Diagnostics that an MTA writes itself when the remote reply is elsewhere in the bounce, after
# the reply code and status are removed: Sendmail's catch-all and the like.
GENERIC_DIAGNOSTICS = frozenset(("service unavailable", "delivery failed", "unknown error",
                                 "permanent failure", "temporary failure", "failed",
                                 "undeliverable", "delivery failure"))

# A status comment that only restates the class ("5.0.0 (permanent failure)").
_GENERIC_COMMENTS = ("permanent failure", "temporary failure", "persistent transient failure",
                     "other or undefined", "undefined status", "delivery failure")

_CODE_PREFIX = re.compile(r"^[245]\d\d[ -]{1,2}(?:#?[245]\.\d{1,3}\.\d{1,3}\s{0,4})?")
_WORD = re.compile(r"[A-Za-z]{3}")


def decode(message: Message) -> Report | None:
    """Decode the delivery-status fields of a DSN, or return None if the message has none."""
    status_part = _find_status_part(message)
    embedded: EmbeddedReport | None = None
    if status_part is not None:
        fields_text = status_part.payload().decode("utf-8", "replace")
        notice = notice_text(message)
    else:
        embedded = _find_embedded(message)
        if embedded is None:
            return None
        fields_text, notice = embedded.fields, embedded.notice

    groups = field_groups(fields_text, message.limits)
    per_message: dict[str, str] = {}
    for group in groups:
        if not is_recipient_group(group):
            for name, value in group.items():
                per_message.setdefault(name, value)

    report = Report(decoded_by=NAME)
    lookups = 0
    for group in groups:
        if is_recipient_group(group):
            lookups += 1
            within_limit = lookups <= message.limits.max_notice_lookups
            recipient = _recipient_fields(group, per_message, notice if within_limit else "",
                                          message.limits)
            if recipient is not None:
                # A folded Diagnostic-Code can run on for the whole entity: keep one line's worth.
                max_length = message.limits.max_line_length
                recipient.diagnostic_code = recipient.diagnostic_code[:max_length]
                report.recipients.append(recipient)

    if not report.recipients and per_message.get("reporting-mta"):
        report.recipients = _recipients_without_groups(message, per_message, notice)

    sender = per_message.get("x-postfix-sender", "")
    if sender:
        report.sender = first_address(typed_value(sender, message.limits)[1])
    if embedded is not None:
        _fill_from_text(report, embedded.after, message)
    return report if report.recipients else None


def _find_status_part(message: Message) -> Part | None:
    for part in message.walk():
        if part.content_type in _STATUS_TYPES:
            return part

    # Some MTAs label the status part text/plain; accept it only inside a report.
    if message.content_type != "multipart/report":
        return None
    for part in message.children():
        if part.content_type == "text/plain" and b"final-recipient:" in part.body[:4096].lower():
            return part
    return None


def _find_embedded(message: Message) -> EmbeddedReport | None:
    # A multipart message whose parts split cleanly has its fields in a part, if anywhere.
    if message.content_type.startswith("multipart/") and message.children():
        return None
    if b"inal-recipient" not in message.body.lower() and b"inal-recipient" not in message.payload():
        return None
    text = decode_bytes(message.payload()[: message.limits.max_scan_text], message.param("charset"))
    return find_embedded(text, message.limits)


def _recipient_fields(group: dict[str, str], per_message: dict[str, str], notice: str,
                      limits: Limits) -> RecipientFields | None:
    final = _address(group.get("final-recipient", ""))
    original = _address(group.get("original-recipient", ""))
    # A Final-Recipient naming a local mailbox ("kijitora@server") gives way to the original.
    final_recipient = final if _is_full_address(final) or not original else original
    if "@" not in final_recipient[1:]:
        return None

    action = group.get("action", "").strip().lower().split(" ")[0]
    status_value = group.get("status", "")
    diagnostic_type, diagnostic = typed_value(group.get("diagnostic-code", ""), limits)
    diagnostic = drop_continuation_codes(diagnostic)
    reply = reply_for(notice, [final_recipient, original], diagnostic, limits)
    chosen = _best_diagnostic(diagnostic, reply, status_value)
    from_server = chosen == diagnostic or reply.from_remote
    # The notice's command and host hold only if it quotes the same reply.
    if chosen and not reply.by_address and not same_reply(chosen, reply.text):
        reply.command = reply.remote_mta = ""
    diagnostic = chosen
    status, status_from_field = _status(status_value, diagnostic if from_server else "")

    return RecipientFields(
        final_recipient=final_recipient,
        original_recipient=original,
        action=action,
        status=status,
        status_from_field=status_from_field,
        reply_code=find_reply_code(diagnostic),
        diagnostic_code=diagnostic,
        diagnostic_type=(diagnostic_type or ("smtp" if reply.from_remote else "")).upper(),
        remote_mta=host_name(group.get("remote-mta", "")) or reply.remote_mta,
        reporting_mta=host_name(per_message.get("reporting-mta", "")),
        smtp_command=find_smtp_command(diagnostic) or reply.command,
        last_attempt_date=parse_date_utc(group.get("last-attempt-date", "")
                                         or per_message.get("arrival-date", "")),
        kind=_ACTION_KINDS.get(action, FAILURE),
    )


def _status(status_value: str, diagnostic: str) -> tuple[str, bool]:
    """Return the status and whether it is the Status field's.

    The remote server's own status in its reply is more specific than the reporting MTA's
    summary of it (Sendmail reports 4.4.7 for a queue timeout whatever the last reply was). So a
    reply's status of the same class replaces the field's, unless it is a bare X.0.0.
    """
    field_status = find_status(status_value)
    reply_status = find_status(diagnostic) if find_reply_code(diagnostic) else ""
    if reply_status and not field_status:
        return reply_status, False
    if (reply_status and reply_status[:1] == field_status[:1]
            and not reply_status.endswith(".0.0")):
        return reply_status, reply_status == field_status
    return field_status, bool(field_status)


def _address(value: str) -> str:
    """Read the address of a recipient field, keeping a quoted local part as written."""
    address = typed_value(value)[1].strip().strip("<>").strip()
    if " " in address or '"' not in address:
        address = first_address(address) or normalize_address(address)

    # A source route ("@relay.example.net:kijitora@example.org") ends with the address.
    if address.startswith("@") and ":" in address:
        address = address.partition(":")[2]
    local, at, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}" if at else address


def _is_full_address(address: str) -> bool:
    local, at, domain = address.rpartition("@")
    return bool(local and at and "." in domain)


def _best_diagnostic(diagnostic: str, reply: NoticeReply, status_value: str) -> str:
    """Choose between the Diagnostic-Code and the notice's reply for the same recipient."""
    if diagnostic and not _is_uninformative(diagnostic):
        # Sendmail copies only the first line of a multi-line reply ("552-5.7.0 ...").
        first_line = diagnostic[:60]
        if reply.from_remote and diagnostic[3:4] == "-" and reply.text.startswith(first_line):
            return reply.text
        return diagnostic
    if reply.text:
        return reply.text
    comment = _status_comment(status_value)
    return comment or diagnostic


def _is_uninformative(diagnostic: str) -> bool:
    text = _CODE_PREFIX.sub("", diagnostic.strip()).strip(" .:;-()").lower()
    return not _WORD.search(text) or text in GENERIC_DIAGNOSTICS


def _status_comment(value: str) -> str:
    """Return the comment of a Status field ("4.0.0 (host name lookup failure)"), if specific."""
    start, end = value.find("("), value.rfind(")")
    if start < 0 or end <= start:
        return ""
    comment = value[start + 1 : end].strip()
    return "" if comment.lower() in _GENERIC_COMMENTS else comment


def _recipients_without_groups(message: Message, per_message: dict[str, str],
                               notice: str) -> list[RecipientFields]:
    """Build rows for a DSN that names no recipient (Postfix's "Delivery report unavailable").

    The recipients are then the addressees of the returned message.
    """
    recipients = []
    for address in original_recipients(message)[:1]:
        reply = reply_for(notice, [address], limits=message.limits)
        recipients.append(RecipientFields(
            final_recipient=address,
            diagnostic_code=reply.text,
            reply_code=find_reply_code(reply.text),
            status=find_status(reply.text),
            reporting_mta=host_name(per_message.get("reporting-mta", "")),
            smtp_command=reply.command,
            remote_mta=reply.remote_mta,
        ))
    return recipients


def _fill_from_text(report: Report, after: str, message: Message) -> None:
    """Read the returned message that follows embedded DSN fields."""
    lines = after.split("\n")
    start = 0
    for index, line in enumerate(lines[:40]):
        if line.lower().startswith("content-type:") and "rfc822" in line.lower():
            start = index + 1
            while start < len(lines) and lines[start].strip():
                start += 1
            break
    text = "\n".join(lines[start:]).lstrip("\n")
    while text.startswith("--"):
        text = text.partition("\n")[2].lstrip("\n")
    if not text:
        return

    original = Part(text.encode("utf-8", "replace"), message.limits, message.depth + 1)
    if not (original.header("from") or original.header("message-id")):
        return
    report.sender = report.sender or first_address(original.header("from"))
    report.original_message_id = original.header("message-id").strip()
    report.subject = decode_words(original.header("subject")).strip()
    report.timestamp = parse_date_utc(original.header("date"))
