"""Oracle Communications Messaging Server, formerly Sun ONE / iPlanet Messaging Server and PMDF.

The notice repeats the headers of the returned message, then gives one block per recipient:

    This report relates to a message you sent with the following header fields:
      ...
    Your message cannot be delivered to the following recipients:

      Recipient address: kijitora@example.org
      Reason: Remote SMTP server has rejected address
      Diagnostic code: smtp;550 5.1.1 <kijitora@example.org>... No such user
      Remote system: dns;mx.example.org (TCP|192.0.2.1|40000|192.0.2.25|25) (mx.example.org ESMTP)

A delivery-status part usually follows, and its Status field is read where it exists.

Quirks: the recipient address can be a source route such as "@mx.example.org:user@host", where
the "Original address" line contains the real one. Remote system values carry the TCP connection
and the server's greeting after the host name. A message that waited too long has no diagnostic
code, and its Reason line is the diagnostic. Old PMDF
reports lose their MIME boundaries, so the blocks are read from the text, not the parts.
"""

from __future__ import annotations

from bouncewise.decode import rfc3464
from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.mail.headers import first_address, normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "messagingserver"

_OPENING = "this report relates to a message you sent with the following header fields:"
_FIELD_NAMES = {"recipient address": "recipient", "original address": "original",
                "reason": "reason", "diagnostic code": "diagnostic",
                "remote system": "remote"}


def decode(message: Message) -> Report | None:
    """Decode a Messaging Server report, or return None if the message is not one."""
    body = _notice_body(message)
    if _OPENING not in body.lower():
        return None

    # The delivery attempt history after the blocks can be long, so only max_notice_lines are read.
    lines = body.split("\n")[: message.limits.max_notice_lines]
    blocks = _recipient_blocks(lines)
    if not blocks:
        return None

    statuses = _statuses(message)
    report = Report(decoded_by=NAME)
    for block in blocks:
        report.recipients.append(_recipient_fields(block, statuses))
    return report


def _notice_body(message: Message) -> str:
    """Return the first text part, or the whole body where the MIME structure is broken."""
    for part in message.walk():
        if part.content_type == "text/plain" and (part is not message or not part.children()):
            return part.text()
    return message.text()


def _recipient_blocks(lines: list[str]) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for line in lines:
        name, colon, value = line.strip().partition(":")
        key = _FIELD_NAMES.get(name.lower()) if colon else None
        if key == "recipient":
            blocks.append({"recipient": value.strip()})
        elif key and blocks and key not in blocks[-1]:
            blocks[-1][key] = value.strip()
    return blocks


def _statuses(message: Message) -> dict[str, tuple[str, bool]]:
    """Map each recipient of the delivery-status part, if any, to its Status and whether that
    came from the Status field."""
    report = rfc3464.decode(message)
    if report is None:
        return {}
    statuses: dict[str, tuple[str, bool]] = {}
    for recipient in report.recipients:
        for address in (recipient.original_recipient, recipient.final_recipient):
            if address:
                statuses.setdefault(address.lower(), (recipient.status, recipient.status_from_field))
    return statuses


def _recipient_address(block: dict[str, str]) -> str:
    recipient = block["recipient"]
    if recipient.startswith("@") and ":" in recipient:
        # A source route "@relay:user@host": the original address is the one the sender wrote.
        return first_address(block.get("original", "")) or normalize_address(recipient.rpartition(":")[2])
    return first_address(recipient) or normalize_address(recipient)


def _typed_value(value: str) -> str:
    kind, semicolon, rest = value.partition(";")
    if semicolon and " " not in kind.strip() and len(kind.strip()) <= 16:
        return rest.strip()
    return value.strip()


def _recipient_fields(block: dict[str, str],
                      statuses: dict[str, tuple[str, bool]]) -> RecipientFields:
    recipient = _recipient_address(block)
    diagnostic = _typed_value(block.get("diagnostic", ""))
    if not diagnostic:
        # No remote reply, such as a message that waited too long: the MTA's reason is used instead.
        diagnostic = block.get("reason", "")

    remote = _typed_value(block.get("remote", ""))
    status, from_field = statuses.get(recipient.lower(), ("", False))
    return RecipientFields(
        final_recipient=recipient,
        original_recipient=first_address(block.get("original", "")),
        action="failed",
        status=status or find_status(diagnostic),
        status_from_field=from_field,
        reply_code=find_reply_code(diagnostic),
        diagnostic_code=diagnostic,
        diagnostic_type="SMTP" if block.get("diagnostic") else "",
        remote_mta=remote.split(" ")[0] if remote else "",
        smtp_command=find_smtp_command(diagnostic),
        kind=FAILURE,
    )
