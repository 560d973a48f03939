"""The human-readable part of a bounce and the copy of the original message it returns.

Shared by the decoders: finding the notice text, cutting it where the returned message starts,
and reading the returned message's headers for the sender, Message-ID, Subject and Date.
"""

from __future__ import annotations

from bouncewise.decode.fields import Report
from bouncewise.mail.headers import addresses, decode_words, first_address, parse_date_utc
from bouncewise.mail.message import Message, Part

# Lower-case fragments of the line that separates a notice from the message it returns, as
# Exim, qmail, Gmail, Sendmail, Exchange, DMA and others write it.
ORIGINAL_MARKERS = (
    "this is a copy of the message",
    "below this line is a copy of the message",
    "original message follows",
    "unsent message follows",
    "returned message follows",
    "message headers follow",
    "original message headers",
    "----- original message -----",
    "------ original message ------",
    "--- original message ---",
    "copy of the original message",
    "original message text follows",
    "header of the original message",
    "headers of the original message",
    "text of the original message",
    "message text follows",
    "start of original message",
    "included is a copy of the message",
    "the headers of your message",
    "headers of your message",
    "original message header",
    "original message was",
    "this is a copy of your message",
    "original mail as follows",
    # German and French wording, as GMX, web.de, localised Exim and Outlook write it.
    "kopie der nachricht",
    "original-nachricht",
    "ursprüngliche nachricht",
    "message d'origine",
)

# Lower-case fragments of lines that contain a marker's words but start no returned message:
# Sendmail opens every notice with "The original message was received at <date>".
NOT_MARKERS = (
    "original message was received",
)

_NOTICE_TYPES = ("text/plain", "text/html", "text/enriched")
_ORIGINAL_TYPES = ("message/rfc822", "message/global", "text/rfc822-headers",
                   "message/rfc822-headers", "message/global-headers")


def is_marker(line: str) -> bool:
    """Return True if `line` introduces the returned copy of the original message."""
    lowered = line.strip().lower()
    if not lowered or len(lowered) > 120:
        return False
    if any(fragment in lowered for fragment in NOT_MARKERS):
        return False
    return any(fragment in lowered for fragment in ORIGINAL_MARKERS)


def notice_text(message: Message) -> str:
    """Return the notice: the first text part outside any returned message, cut at the marker."""
    cache = getattr(message, "cache", None)
    if cache is None:
        return _notice_text(message)
    if "notice_text" not in cache:
        cache["notice_text"] = _notice_text(message)
    return cache["notice_text"]


def _notice_text(message: Message) -> str:
    part = notice_part(message)
    if part is None:
        return ""
    text = part.text()
    if part.content_type.startswith("text/html"):
        text = strip_html(text)
    return split_original(text)[0]


def notice_part(message: Part) -> Part | None:
    """Return the first text part outside any returned message, or None.

    A type is matched by its start, so that `text/plain` is found even where its parameters are
    malformed, as in `Content-Type: text/plain charset="iso-2022-jp"`.
    """
    if not message.content_type.startswith("multipart/"):
        return message if message.content_type.startswith("text/") else None

    stack = list(reversed(message.children()))
    while stack:
        part = stack.pop()
        if part.content_type.startswith(_NOTICE_TYPES):
            return part
        if part.content_type.startswith("multipart/"):
            stack.extend(reversed(part.children()))
    return None


def split_original(text: str) -> tuple[str, str]:
    """Split text at the first marker line into (notice, returned message)."""
    start = _first_marker_line(text)
    if start < 0:
        return text, ""
    end = text.find("\n", start)
    if end < 0:
        return text[:start], ""
    return text[:start], text[end + 1 :]


def _first_marker_line(text: str) -> int:
    """Return the offset of the first marker line in `text`, or -1.

    Each marker fragment is searched for in the whole text rather than line by line, because
    that costs far less on long notices. A line found is then checked as a whole by `is_marker`.
    """
    lowered = text.lower()
    if len(lowered) != len(text):
        # Lower-casing changed some offsets (as for "İ"): check line by line instead.
        position = 0
        for line in text.split("\n"):
            if is_marker(line):
                return position
            position += len(line) + 1
        return -1

    first = -1
    for fragment in ORIGINAL_MARKERS:
        found = lowered.find(fragment)
        while found >= 0 and (first < 0 or found < first):
            line_start = lowered.rfind("\n", 0, found) + 1
            line_end = lowered.find("\n", found)
            if is_marker(text[line_start : line_end if line_end >= 0 else len(text)]):
                first = line_start
                break
            found = lowered.find(fragment, found + 1)
    return first


def strip_html(text: str) -> str:
    """Reduce HTML to its text: tags become line breaks or spaces, common entities decoded."""
    import html

    pieces = []
    position = 0
    while True:
        start = text.find("<", position)
        if start < 0:
            pieces.append(text[position:])
            break
        pieces.append(text[position:start])
        end = text.find(">", start)
        if end < 0:
            break
        tag = text[start + 1 : start + 6].lower()
        pieces.append("\n" if tag.startswith(("br", "p", "/p", "div", "/div", "tr", "li", "h")) else " ")
        position = end + 1
    return html.unescape("".join(pieces))


def original_part(message: Part) -> Part | None:
    """Return the returned original message (or its headers) as a part, or None."""
    for part in message.walk():
        if part.content_type in _ORIGINAL_TYPES:
            children = part.children()
            if children:
                return children[0]

    body = message.text() if not message.content_type.startswith("multipart/") else ""
    if not body:
        notice = notice_part(message)
        body = notice.text() if notice is not None else ""
    returned = split_original(body)[1].lstrip("\n")
    if not returned:
        return None
    return Part(returned.encode("utf-8", "replace"), message.limits, message.depth + 1)


def fill_original(report: Report, message: Part) -> None:
    """Copy the original message's sender, Message-ID, Subject and Date into `report`."""
    original = original_part(message)
    if original is None:
        return
    if not report.sender:
        report.sender = first_address(original.header("from")) or first_address(
            original.header("return-path"))
    if not report.original_message_id:
        report.original_message_id = original.header("message-id").strip()
    if not report.subject:
        report.subject = decode_words(original.header("subject")).strip()
    if not report.timestamp:
        report.timestamp = parse_date_utc(original.header("date"))


def original_recipients(message: Message) -> list[str]:
    """Return the To and Cc addresses of the returned original message."""
    original = original_part(message)
    if original is None:
        return []
    found: list[str] = []
    for name in ("to", "cc"):
        for value in original.headers(name):
            found.extend(addresses(value))
    return found
