"""Verizon Wireless MMS gateway (vzwpix.com): the "MMSC NDR Administrator" notice for a message
that could not go to a phone.

    Message could not be delivered to mobile.
    Error: No valid recipients for this MM

    Original Message:
    From: sender@example.net
    To: 5555550100@vzwpix.example.com

Quirks: the notice names the recipient only in the "To:" line of the summary of the original
message below "Original Message:". The "Error:" line is the gateway's reply.
"""

from __future__ import annotations

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.mail.headers import addresses
from bouncewise.mail.message import Message

NAME = "verizon"

_OPENING = "message could not be delivered to mobile"
_ORIGINAL = "original message:"


def decode(message: Message) -> Report | None:
    """Decode a Verizon MMS gateway notice, or return None if the message is not one."""
    notice = _first_text(message)
    lowered = notice.lower()
    if _OPENING not in lowered or _ORIGINAL not in lowered:
        return None

    error = ""
    in_original = False
    recipients: list[str] = []
    for line in notice.split("\n")[: message.limits.max_short_notice_lines]:
        stripped = line.strip()
        if stripped.lower() == _ORIGINAL:
            in_original = True
        elif not in_original and stripped.lower().startswith("error:") and not error:
            error = stripped[len("error:"):].strip()
        elif in_original and stripped.lower().startswith("to:"):
            recipients.extend(addresses(stripped[3:]))

    report = Report(decoded_by=NAME)
    for recipient in recipients:
        report.recipients.append(RecipientFields(
            final_recipient=recipient,
            action="failed",
            diagnostic_code=error,
            kind=FAILURE,
        ))
    return report if report.recipients else None


def _first_text(message: Message) -> str:
    for part in message.walk():
        if part.content_type == "text/plain":
            return part.text()
    return ""
