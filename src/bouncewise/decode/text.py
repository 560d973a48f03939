"""Plain-text bounces of MTAs that have no decoder of their own and write no delivery-status part:
IMail, MailFoundry, Active!Hunter, and the many home-grown formats that share their shape.

Such a notice names each failed recipient on a line of its own, in angle brackets, or within a
sentence, and puts the remote server's reply near it, as in

    Unable to deliver message to: <user@example.org>
    Delivery failed for the following reason:
    Server mx.example.org[192.0.2.1] failed with: 550 No such user here

The diagnostic is the text after a phrase that introduces a reply ("said:", "failed with:",
"responded as follows:"), up to a blank line. Without such a phrase, it is the notice text about
the recipient, less headings and repeated addresses. A notice about a single recipient that states the reason
before the address is read whole.

This decoder is the last resort for failures: it runs after every format-specific decoder, and
only on messages that a mail system sent as a bounce (by sender, subject or header).
"""

from __future__ import annotations

import bisect
import re

from bouncewise.config import Limits
from bouncewise.decode.fields import RecipientFields, Report
from bouncewise.decode.plain import (build_recipient, find_address, find_command, find_remote_mta,
                                     notice_body, squeeze)
from bouncewise.mail.headers import addresses, decode_words, normalize_address
from bouncewise.mail.message import Message

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

# A word of lower-case notice text that may be a recipient's address, as `_segments` looks it up.
_MENTION = re.compile(r"[^\s<>()\[\]\"',;:@]{1,64}@[a-z0-9][a-z0-9.-]{0,252}")

# Header fields of a returned message that never name a failed recipient: identifiers that look
# like addresses, and the originator's fields.
_SKIPPED_HEADERS = ("message-id:", "in-reply-to:", "references:", "from:", "sender:",
                    "reply-to:", "return-path:")

# Lower-case phrases that introduce the remote server's reply inside a notice, as in "Remote host
# said:", "failed with:", "It responded as follows:" or "with the following error message:".
# Lotus Domino writes "was not delivered to: <address> because: <reason>", Exchange 2010 and
# later "Remote Server returned '<reply>'", and MailEnable "Remote SMTP Server Returned: <reply>".
REPLY_INTRODUCTIONS = ("said:", "failed with:", "responded as follows:", "error message:",
                       "generated response:", "response was:", "reply was:", "reason:",
                       "replied:", "because:", "server returned '", "server returned:")

# A reply that starts with a code, possibly in brackets: "550 ...", "[554 5.4.6 ...]".
_REPLY_START = re.compile(r"^[\[(\s]{0,3}[245][0-9][0-9][ -]")

# Lines of a notice that carry no reply: section headings such as "----- Transcript of session
# follows -----".
_HEADING_EDGE = "---"


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
    # A notice that lists thousands of recipients is longer than max_scan_text. It is read up to
    # max_recipient_list_text, and each recipient's part of it is cut to max_diagnostic_length.
    limits = message.limits
    notice = _before_mbox_copy(notice_body(message, limits.max_recipient_list_text))
    if not notice.strip():
        return None

    excluded = set(addresses(message.header("to"))) | set(addresses(message.header("from")))
    recipients = _failed_recipients(message, notice, excluded)
    if not recipients:
        return None

    report = Report(decoded_by=NAME)
    whole_notice = notice[: limits.max_diagnostic_length * 2] if len(recipients) == 1 else ""
    for recipient, segment in _segments(notice, recipients, limits):
        report.recipients.append(_recipient(recipient, segment, whole_notice, limits))
    return report


def _before_mbox_copy(notice: str) -> str:
    """Cut the notice where it quotes the returned message in mbox form ("From sender date"),
    or where the returned headers follow a blank line with no marker line, as Zoho writes them.
    """
    position = 0
    previous = ""
    for line in notice.split("\n"):
        if line.startswith("From ") and "@" in line.partition(" ")[2].partition(" ")[0]:
            return notice[:position]
        if line.startswith("Received: from ") and not previous.strip():
            return notice[:position]
        previous = line
        position += len(line) + 1
    return notice


def _recipient(recipient: str, segment: str, notice: str, limits: Limits) -> RecipientFields:
    """Build the record of one recipient from the part of the notice that concerns it."""
    command = find_command(segment)
    remote_mta = find_remote_mta(segment)
    reply = _reply(segment, recipient, notice, limits)
    return build_recipient(recipient, reply, remote_mta=remote_mta, smtp_command=command,
                           limits=limits)


def _reply(segment: str, recipient: str, notice: str, limits: Limits) -> str:
    """Return the remote server's reply in a segment, or the segment without its clutter.

    Where `notice` is given (the opening of a notice about one recipient), a reply introduced
    anywhere in it is used when the segment itself has none, because some notices state the
    reason first.
    """
    reply = _introduced_reply(segment)
    if not reply and notice:
        reply = _introduced_reply(notice)
    return reply or _without_clutter(segment, recipient, limits)


def _introduced_reply(text: str) -> str:
    """Return the text after a reply introduction such as "said:", up to a blank line, or ""."""
    lowered = text.lower()
    position = 0
    found = -1
    while True:
        # Take the first introduction that is followed by a reply code, else the last one.
        starts = [(lowered.find(phrase, position), phrase) for phrase in REPLY_INTRODUCTIONS]
        starts = [(start, phrase) for start, phrase in starts if start >= 0]
        if not starts:
            break
        start, phrase = min(starts)
        found = start + len(phrase)
        if _REPLY_START.match(text[found:].lstrip(" ")):
            break
        position = found
    if found < 0:
        return ""

    reply = text[found:].strip()
    paragraph_end = reply.find("\n\n")
    reply = reply[:paragraph_end] if paragraph_end > 0 else reply
    if reply.startswith("[") and reply.rstrip().endswith("]"):
        reply = reply.strip()[1:-1]
    if reply.rstrip().endswith(")") and text[:start].rstrip().endswith("("):
        # Sendmail-like notices put the whole reply in brackets: "(reason: 554 5.7.1 Blocked)".
        reply = reply.rstrip()[:-1]
    if phrase.endswith("'") and reply.rstrip().endswith("'"):
        reply = reply.rstrip()[:-1]
    return reply.strip()


def _without_clutter(segment: str, recipient: str, limits: Limits) -> str:
    """Drop headings and lines that only repeat the address, and the address that leads."""
    kept = []
    for line in segment.split("\n"):
        stripped = line.strip()
        if stripped.startswith(_HEADING_EDGE) and stripped.endswith(_HEADING_EDGE):
            continue
        bare = stripped.lstrip("> ").replace("<", " ").replace(">", " ").strip(" :")
        if bare and all(word.lower() == recipient.lower() for word in bare.split()):
            continue
        kept.append(stripped)
    text = squeeze("\n".join(kept), limits.max_diagnostic_length)
    if text.lower().startswith((recipient.lower(), "<" + recipient.lower())):
        text = text.lstrip("<")[len(recipient) :].lstrip("<> :")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if text.startswith("#") and text.endswith("##"):
        # Exchange 2010 and later write a failure of their own as "#554 5.2.2 mailbox full; ##".
        text = text[1:-2].strip()
    return text


def _failed_recipients(message: Message, notice: str, excluded: set[str]) -> list[str]:
    header = message.header("x-failed-recipients")
    if header:
        return _unique(normalize_address(value) for value in header.split(",") if "@" in value)

    at_line_start: list[str] = []
    in_brackets: list[str] = []
    anywhere: list[str] = []
    for line in notice.split("\n"):
        if line.lower().startswith(_SKIPPED_HEADERS):
            continue
        match = _LINE_ADDRESS.match(line)
        if match:
            at_line_start.append(normalize_address(match.group(1)))
        in_brackets.extend(normalize_address(found) for found in _ANGLE_ADDRESS.findall(line))
        address = find_address(line)
        if address:
            anywhere.append(address)
    for candidates in (at_line_start, in_brackets, anywhere):
        recipients = [address for address in _unique(candidates) if _is_recipient(address, excluded)]
        if recipients:
            return recipients
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


def _segments(notice: str, recipients: list[str], limits: Limits) -> list[tuple[str, str]]:
    """Pair each recipient with the notice text from its first mention to the next recipient's."""
    diagnostic_length = limits.max_diagnostic_length
    mentions = _first_mentions(notice.lower(), recipients, limits.max_notice_lookups)
    ordered = sorted(set(position for position in mentions if position >= 0))

    pairs = []
    for recipient, position in zip(recipients, mentions):
        if position < 0:
            pairs.append((recipient, notice[:diagnostic_length]))
            continue
        start = notice.rfind("\n", 0, position) + 1
        following = bisect.bisect_right(ordered, position)
        end = len(notice)
        if following < len(ordered):
            end = notice.rfind("\n", 0, ordered[following]) + 1
        if end <= start:
            end = len(notice)

        # Slices are cut before they are copied, so that a long tail after a list of thousands
        # of recipients is not copied once per recipient.
        segment = notice[start : min(end, start + diagnostic_length * 2)]
        if len(squeeze(segment, diagnostic_length).replace(recipient, "").strip(" <>:.")) < 12:
            # The recipients are listed together and the reason follows the list.
            list_end = notice.rfind("\n", 0, ordered[-1]) + 1
            segment = notice[list_end : list_end + diagnostic_length * 2]
        pairs.append((recipient, segment))
    return pairs


def _first_mentions(lowered: str, recipients: list[str], max_lookups: int) -> list[int]:
    """Return where each recipient is first mentioned in the lower-case notice, or -1.

    One pass over the address-like words of the notice finds the mentions, so the cost grows
    with the notice and not with notice times recipients. A recipient that the pass misses,
    because its address is the tail of a longer word, is searched for directly. Each such search
    scans the notice, so only the first `max_lookups` missed recipients are searched for.
    """
    listed = {recipient.lower() for recipient in recipients}
    first: dict[str, int] = {}
    for match in _MENTION.finditer(lowered):
        word = match.group(0)
        if word not in listed:
            word = word.rstrip(".")
        if word in listed and word not in first:
            first[word] = match.start()

    lookups = 0
    mentions = []
    for recipient in recipients:
        address = recipient.lower()
        position = first.get(address, -1)
        if position < 0 and lookups < max_lookups:
            lookups += 1
            position = lowered.find(address)
        mentions.append(position)
    return mentions
