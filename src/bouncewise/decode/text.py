"""Plain-text bounces from any MTA that writes no delivery-status part: Exim, qmail, old Gmail,
DMA, Yahoo, Google Groups, and the many home-grown formats that share their shape.

Such a notice names each failed recipient on a line of its own, or in angle brackets, and puts
the remote server's reply below it, as in

    <kijitora@example.org>:
    192.0.2.1 does not like recipient.
    Remote host said: 550 5.1.1 No such user

This decoder is the last resort for failures: it runs after every format-specific decoder, and
only on messages that a mail system sent as a bounce (by sender, subject or header).
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.mail.headers import addresses, decode_words, first_address, normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "text"

# Lower-case fragments of a sender that is a mail system rather than a person.
SYSTEM_SENDERS = ("mailer-daemon", "mailer_daemon", "postmaster", "mail delivery", "maildelivery",
                  "mail-daemon", "mmdf", "bounce", "mail administrator", "mailadmin",
                  "mail system", "internet mail", "no-reply", "noreply", "mail.delivery",
                  "microsoftexchange", "mailerdaemon", "delivery subsystem", "smtp gateway")

# Lower-case fragments of the Subject of a bounce.
BOUNCE_SUBJECTS = ("undeliver", "undelivered", "delivery status notification", "failure notice",
                   "returned mail", "delivery failure", "delivery failed", "mail delivery failed",
                   "could not be delivered", "delivery has failed", "non remis", "nondeliverable",
                   "non-deliverable", "delivery notification", "mail system error",
                   "rejected", "not delivered", "failed delivery", "delivery problem",
                   "warning: could not send", "returned to sender", "unzustellbar",
                   "delivery incomplete", "delayed mail", "message status", "bounce",
                   "mail delivery system", "error sending", "permanent error",
                   "delivery report", "message you sent", "undeliverable mail")

# Local parts that belong to the mail system, never to a failed recipient.
_SYSTEM_LOCAL_PARTS = frozenset(("postmaster", "mailer-daemon", "mailer_daemon", "abuse",
                                 "noreply", "no-reply", "root", "hostmaster"))

_LINE_ADDRESS = re.compile(r"^[\s>*-]{0,12}<?\s{0,4}([^\s<>()\[\]\"',;:@]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})")
_ANGLE_ADDRESS = re.compile(r"<([^\s<>()\[\]\"',;:@]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>")

# Characters of notice text kept as one recipient's diagnostic.
_MAX_DIAGNOSTIC = 2000


def is_bounce(message: Message) -> bool:
    """Return True if the message was sent by a mail system as a delivery report."""
    if message.header("x-failed-recipients"):
        return True
    sender = message.header("from").lower() or message.header("return-path").lower()
    if any(fragment in sender for fragment in SYSTEM_SENDERS):
        return True
    subject = decode_words(message.header("subject")).lower()
    return any(fragment in subject for fragment in BOUNCE_SUBJECTS)


def decode(message: Message) -> Report | None:
    """Decode a plain-text bounce, or return None if the message is not one."""
    if not is_bounce(message):
        return None
    notice = notice_text(message)
    if not notice.strip():
        return None

    excluded = set(addresses(message.header("to"))) | set(addresses(message.header("from")))
    recipients = _failed_recipients(message, notice, excluded)
    if not recipients:
        return None

    report = Report(decoded_by=NAME)
    for recipient, diagnostic in _diagnostics(notice, recipients):
        report.recipients.append(recipient_from_text(recipient, diagnostic))
    return report


def recipient_from_text(recipient: str, diagnostic: str, kind: str = FAILURE) -> RecipientFields:
    """Build a recipient record from an address and the notice text that explains it."""
    return RecipientFields(
        final_recipient=recipient,
        status=find_status(diagnostic),
        reply_code=find_reply_code(diagnostic),
        diagnostic_code=diagnostic,
        diagnostic_type="SMTP" if find_reply_code(diagnostic) else "",
        smtp_command=find_smtp_command(diagnostic),
        kind=kind,
    )


def _failed_recipients(message: Message, notice: str, excluded: set[str]) -> list[str]:
    header = message.header("x-failed-recipients")
    if header:
        return _unique(normalize_address(value) for value in header.split(",") if "@" in value)

    at_line_start = []
    in_brackets = []
    for line in notice.split("\n"):
        match = _LINE_ADDRESS.match(line)
        if match:
            at_line_start.append(normalize_address(match.group(1)))
        in_brackets.extend(normalize_address(found) for found in _ANGLE_ADDRESS.findall(line))
    for candidates in (at_line_start, in_brackets):
        found = [address for address in _unique(candidates) if _is_recipient(address, excluded)]
        if found:
            return found
    return []


def _is_recipient(address: str, excluded: set[str]) -> bool:
    if address in excluded:
        return False
    local = address.partition("@")[0].lower()
    return local not in _SYSTEM_LOCAL_PARTS


def _unique(values) -> list[str]:
    seen: dict[str, None] = {}
    for value in values:
        if value and value not in seen:
            seen[value] = None
    return list(seen)


def _diagnostics(notice: str, recipients: list[str]) -> list[tuple[str, str]]:
    """Pair each recipient with the notice text from its first mention to the next recipient's."""
    lowered = notice.lower()
    mentions = []
    for recipient in recipients:
        position = lowered.find(recipient.lower())
        mentions.append(position)

    ordered = sorted(position for position in mentions if position >= 0)
    pairs = []
    for recipient, position in zip(recipients, mentions):
        if position < 0:
            pairs.append((recipient, _squeeze(notice)))
            continue
        start = notice.rfind("\n", 0, position) + 1
        later = [mention for mention in ordered if mention > position]
        end = notice.rfind("\n", 0, later[0]) + 1 if later else len(notice)
        segment = notice[start:end] if end > start else notice[start:]
        text = _squeeze(segment)
        if len(text.replace(recipient, "").strip(" <>:.")) < 12:
            # The recipients are listed together and the reason follows the list.
            text = _squeeze(notice[(notice.rfind("\n", 0, ordered[-1]) + 1):])
        pairs.append((recipient, text))
    return pairs


def _squeeze(text: str) -> str:
    return " ".join(text.split())[:_MAX_DIAGNOSTIC]
