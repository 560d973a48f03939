"""Automatic replies (RFC 3834): out-of-office and vacation notices from any mail system.

These are not failures, but a sender counting replies must not mistake them for bounces. A
message counts as one when its headers mark it so (`Auto-Submitted: auto-replied`,
`X-Autoreply`, `Precedence: auto_reply`) or its subject opens with the usual words, such as
"Automatic reply: ..." or "Out of Office: ...". The recipient is the person who is away: the
sender of the reply.
"""

from __future__ import annotations

from bouncewise.decode.fields import AUTO_REPLY, RecipientFields, Report
from bouncewise.mail.headers import decode_words, first_address
from bouncewise.mail.message import Message

NAME = "autoreply"

# Header fields whose presence marks a message as an automatic reply.
_MARKER_FIELDS = ("x-autoreply", "x-autorespond", "x-autoresponder", "x-vacation")

# Lower-case subject openings of automatic replies, in the languages they are commonly sent in.
_SUBJECT_STARTS = (
    "auto:", "autoreply", "auto-reply", "auto reply", "automatic reply", "automatische antwort",
    "out of office", "out of the office", "vacation", "away from", "absence", "abwesend",
    "réponse automatique", "reponse automatique", "risposta automatica", "respuesta automática",
    "on leave", "autosvar", "automatisch antwoord", "not in office", "i am away",
)

# Lower-case words that mark a mail system's bounce, which is never an automatic reply.
_BOUNCE_WORDS = ("mailer-daemon", "postmaster", "mail delivery", "undeliver", "delivery status",
                 "failure notice", "returned mail", "delivery failure")


def decode(message: Message) -> Report | None:
    """Recognise an automatic reply, or return None."""
    subject = decode_words(message.header("subject")).strip()
    lowered_subject = subject.lower()
    sender = message.header("from")
    if any(word in sender.lower() or word in lowered_subject for word in _BOUNCE_WORDS):
        return None

    auto_submitted = message.header("auto-submitted").strip().lower()
    precedence = message.header("precedence").strip().lower()
    marked = (
        auto_submitted.startswith("auto-replied")
        or precedence == "auto_reply"
        or any(message.header(name) for name in _MARKER_FIELDS)
        or lowered_subject.startswith(_SUBJECT_STARTS)
    )
    if not marked:
        return None

    recipient = first_address(sender)
    report = Report(decoded_by=NAME, subject=subject)
    report.recipients.append(RecipientFields(
        final_recipient=recipient,
        diagnostic_code=subject,
        kind=AUTO_REPLY,
    ))
    return report
