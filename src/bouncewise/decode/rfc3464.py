"""RFC 3464 delivery status notifications, as sent by Postfix, Sendmail, Exchange, Gmail and most
modern MTAs.

The machine-readable part is a `message/delivery-status` entity: one group of fields about the
message, then one group per recipient, such as

    Final-Recipient: rfc822; kijitora@example.org
    Action: failed
    Status: 5.1.1
    Remote-MTA: dns; mx.example.org
    Diagnostic-Code: smtp; 550 5.1.1 <kijitora@example.org>: Recipient address rejected

Quirks handled: groups run together without the blank line between them; the entity is labelled
`text/plain` or carried base64-encoded; the Diagnostic-Code is missing and the reply is only in the
human-readable part (a Sendmail transcript or a Postfix notice), which is read as a fallback.
"""

from __future__ import annotations

from bouncewise.decode.fields import DELAY, DELIVERED, FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text, reply_near
from bouncewise.mail.headers import first_address, normalize_address
from bouncewise.mail.message import Message, Part
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "rfc3464"

_STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")

_ACTION_KINDS = {"failed": FAILURE, "delayed": DELAY, "delivered": DELIVERED,
                 "relayed": DELIVERED, "expanded": DELIVERED}


def decode(message: Message) -> Report | None:
    """Decode the delivery-status part of a DSN, or return None if the message has none."""
    status_part = _find_status_part(message)
    if status_part is None:
        return None

    groups = _field_groups(status_part.payload().decode("utf-8", "replace"))
    per_message: dict[str, str] = {}
    if groups and "final-recipient" not in groups[0] and "original-recipient" not in groups[0]:
        per_message = groups.pop(0)

    notice = notice_text(message)
    report = Report(decoded_by=NAME)
    for group in groups:
        recipient = _recipient_fields(group, per_message, notice)
        if recipient is not None:
            report.recipients.append(recipient)

    sender = per_message.get("x-postfix-sender", "")
    if sender:
        report.sender = first_address(sender.partition(";")[2] or sender)
    return report if report.recipients else None


def _find_status_part(message: Message) -> Part | None:
    for part in message.walk():
        if part.content_type in _STATUS_TYPES:
            return part

    # Some MTAs label the status part text/plain; accept it only inside a report.
    if message.content_type != "multipart/report":
        return None
    for part in message.children():
        if part.content_type == "text/plain" and b"Final-Recipient:" in part.body[:4096]:
            return part
    return None


def _field_groups(text: str) -> list[dict[str, str]]:
    """Split the status entity into field groups, starting a new group at each Final-Recipient."""
    groups: list[dict[str, str]] = []
    current: dict[str, str] = {}
    name = ""

    for line in text.split("\n"):
        if not line.strip():
            if current:
                groups.append(current)
            current, name = {}, ""
            continue
        if line[:1] in (" ", "\t") and name:
            current[name] += " " + line.strip()
            continue
        field_name, colon, value = line.partition(":")
        if not colon:
            continue
        name = field_name.strip().lower()
        if name in ("final-recipient", "original-recipient") and _has_recipient(current, name):
            groups.append(current)
            current = {}
        current.setdefault(name, value.strip())
        if current[name] != value.strip():
            name = ""
    if current:
        groups.append(current)
    return groups


def _has_recipient(group: dict[str, str], name: str) -> bool:
    if name in group:
        return True
    return name == "original-recipient" and "final-recipient" in group


def _typed_value(value: str) -> tuple[str, str]:
    """Split `type; value` as in `rfc822; user@example.org` or `smtp; 550 ...`."""
    kind, semicolon, rest = value.partition(";")
    if semicolon and " " not in kind.strip() and len(kind.strip()) <= 16:
        return kind.strip().lower(), rest.strip()
    return "", value.strip()


def _recipient_fields(group: dict[str, str], per_message: dict[str, str],
                      notice: str) -> RecipientFields | None:
    final = _typed_value(group.get("final-recipient", ""))[1]
    original = _typed_value(group.get("original-recipient", ""))[1]
    final_recipient = first_address(final) or normalize_address(final)
    if not final_recipient:
        final_recipient = first_address(original)
    if not final_recipient:
        return None

    action = group.get("action", "").strip().lower().split(" ")[0]
    diagnostic_type, diagnostic = _typed_value(group.get("diagnostic-code", ""))
    if not diagnostic:
        diagnostic = reply_near(notice, final_recipient)
    status = find_status(group.get("status", ""))

    return RecipientFields(
        final_recipient=final_recipient,
        original_recipient=first_address(original),
        action=action,
        status=status,
        reply_code=find_reply_code(diagnostic),
        diagnostic_code=diagnostic,
        diagnostic_type=diagnostic_type.upper(),
        remote_mta=_typed_value(group.get("remote-mta", ""))[1],
        reporting_mta=_typed_value(per_message.get("reporting-mta", ""))[1],
        smtp_command=find_smtp_command(diagnostic) or find_smtp_command(notice),
        last_attempt_date=group.get("last-attempt-date", "") or per_message.get("arrival-date", ""),
        kind=_ACTION_KINDS.get(action, FAILURE),
    )
