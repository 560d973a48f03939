"""Bounces that the Mailman list manager forwards to the list owners inside a notice of its own.

Mailman 2.1 and 3 send a bounce that they cannot read to the list owners as a `message/rfc822`
attachment, under the subject "Uncaught bounce notification", with a notice such as

    The attached message was received as a bounce, but either the bounce format was not
    recognized, or no member addresses could be extracted from it.

The notice names no failed recipient, so the attached bounce is run through the other decoders
as if it had arrived on its own. The attached bounce is not unwrapped again if it is itself
such a notice, which bounds the work on a message that nests them.
"""

from __future__ import annotations

from bouncewise.decode.fields import Report
from bouncewise.decode.notice import fill_original
from bouncewise.decode.plain import notice_body
from bouncewise.mail.message import Message, Part

NAME = "mailman"

# Lower-case fragments of the Subject or notice of a forwarded bounce.
_FORWARD_PHRASES = ("uncaught bounce", "received as a bounce")

_ATTACHED_TYPES = ("message/rfc822", "message/global")


def decode(message: Message) -> Report | None:
    """Decode the bounce attached to a Mailman notice, or return None if there is none."""
    subject = message.header("subject").lower()
    notice = notice_body(message).lower()
    if not any(phrase in subject or phrase in notice for phrase in _FORWARD_PHRASES):
        return None

    for part in message.children():
        if part.content_type not in _ATTACHED_TYPES or not part.children():
            continue
        report = _decode_attached(part.children()[0])
        if report is not None:
            return report
    return None


def _decode_attached(attached: Part) -> Report | None:
    # Imported here because the registry imports this module.
    from bouncewise.decode.registry import DECODERS

    for decoder in DECODERS:
        if decoder.NAME == NAME:
            continue
        report = decoder.decode(attached)
        if report is None or not report.recipients:
            continue
        fill_original(report, attached)
        report.decoded_by = f"{NAME}:{report.decoded_by}"
        return report
    return None
