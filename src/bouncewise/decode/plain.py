"""Helpers shared by the decoders of plain-text bounces (Exim, qmail, DMA, OpenSMTPD and others).

They read the notice text, recognise a line that names a recipient, and pick the remote host and
the SMTP command out of the phrases MTAs write around a reply, such as `host mx.example.org
[192.0.2.1]` or `after RCPT TO:<user@example.org>`.
"""

from __future__ import annotations

import re

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.decode import rfc3464
from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_part, notice_text, split_original, strip_html
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.mail.headers import normalize_address
from bouncewise.mail.message import Message, Part, clip_lines, decode_bytes
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

_ADDRESS = re.compile(r"[^\s<>()\[\]\",;:@]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252}")

# Phrases that name the SMTP command a reply was sent for, as MTAs word them. Each alternative is a
# fixed word sequence, so the pattern cannot backtrack beyond a few characters.
_COMMAND = re.compile(
    r"(?:\b(?:after|our|following|for|in reply to|response to)\s{1,4}|\()(?:the\s{1,4})?"
    r"(?:final\s{1,4})?(RCPT\s{1,4}TO|RCPT|MAIL\s{1,4}FROM|MAIL|DATA|end\s{1,4}of\s{1,4}data|TEXT|"
    r"initial\s{1,4}connection|EHLO|HELO|LHLO|STARTTLS|AUTH|greeting|connect)\b",
    re.IGNORECASE,
)

# Forms in which notices name the remote host: "host mx.example.org [192.0.2.1]", "Server
# mx.example.org[192.0.2.1] failed with", "SMTP Server <mx.example.org> rejected",
# "remote host 192.0.2.1 said".
_HOST_NAME = r"([A-Za-z0-9][A-Za-z0-9.-]{0,254})"
_REMOTE_HOSTS = (
    re.compile(r"\b(?:host|server)\s{1,4}" + _HOST_NAME + r"\s{0,4}\[[0-9A-Fa-f.:]{2,45}\]",
               re.IGNORECASE),
    re.compile(r"\bserver\s{1,4}<" + _HOST_NAME + r">", re.IGNORECASE),
    re.compile(r"\bremote host\s{1,4}" + _HOST_NAME + r"\s{1,4}said", re.IGNORECASE),
)

_COMMAND_NAMES = {"rcpt": "RCPT", "mail": "MAIL", "data": "DATA", "end": "DATA", "text": "DATA",
                  "initial": "CONN", "greeting": "CONN", "connect": "CONN", "ehlo": "EHLO",
                  "helo": "HELO", "lhlo": "HELO", "starttls": "STARTTLS", "auth": "AUTH"}


def notice_body(message: Message, max_length: int = 0) -> str:
    """Return the notice as `notice.notice_text` does, but read up to `max_length` characters
    where that is larger than `max_scan_text`, for notices that list many recipients."""
    if max_length <= message.limits.max_scan_text:
        return notice_text(message)
    key = f"notice_body:{max_length}"
    cache = getattr(message, "cache", None)
    if cache is None:
        return _notice_body(message, max_length)
    if key not in cache:
        cache[key] = _notice_body(message, max_length)
    return cache[key]


def _notice_body(message: Message, max_length: int) -> str:
    part = notice_part(message)
    if part is None:
        return ""
    text = _part_text(part, max_length)
    if part.content_type.startswith("text/html"):
        text = strip_html(text)
    return cut_original(text)


def _part_text(part: Part, max_length: int) -> str:
    """Return the decoded text of `part` cut to `max_length` characters, as `Part.text` does.

    Text cut beyond `max_scan_text` ends at the last whole line, so that no half address is read.
    """
    if max_length <= part.limits.max_scan_text:
        return part.text()
    payload = part.payload()
    if len(payload) <= part.limits.max_scan_text:
        return part.text()

    text = decode_bytes(payload[: max_length * 4], part.param("charset"))
    if len(text) > max_length:
        text = text[:max_length]
        text = text[: text.rfind("\n") + 1] or text
    return clip_lines(text, part.limits.max_line_length)


def cut_original(text: str) -> str:
    """Return `text` up to the line that introduces the returned message."""
    return split_original(text)[0]


def find_address(text: str, limits: Limits = DEFAULT_LIMITS) -> str:
    """Return the first mail address in the first `max_address_scan` characters, normalised, or ""."""
    match = _ADDRESS.search(text[: limits.max_address_scan])
    return normalize_address(match.group(0).rstrip(".")) if match else ""


def leading_address(line: str, limits: Limits = DEFAULT_LIMITS) -> tuple[str, str]:
    """Read a line that starts with a recipient address; return (address, rest) or ("", "").

    Accepted forms: `user@example.org`, `<user@example.org>`, either followed by a colon, and
    `text <user@example.org>` where the text before the brackets is a display name.
    """
    text = line.strip()[: limits.max_address_scan]
    if text.startswith("<"):
        end = text.find(">")
        if end < 0:
            return "", ""
        candidate, rest = text[1:end], text[end + 1 :]
    else:
        candidate, _, rest = text.replace("\t", " ").partition(" ")
        rest = rest.lstrip()
        end = rest.find(">") if rest.startswith("<") else -1
        if end > 0 and _ADDRESS.fullmatch(rest[1:end]):
            candidate, rest = rest[1:end], rest[end + 1 :]

    candidate = candidate.rstrip(":")
    if not _ADDRESS.fullmatch(candidate):
        return "", ""
    return normalize_address(candidate), rest.lstrip(" :").strip()


def find_remote_mta(text: str) -> str:
    """Return the remote host that a notice names beside the reply, or ""."""
    for pattern in _REMOTE_HOSTS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return ""


def find_command(text: str) -> str:
    """Return the SMTP command that a reply was sent for, read from the MTA's wording, or ""."""
    match = _COMMAND.search(text)
    if match:
        word = match.group(1).split()[0].lower()
        return _COMMAND_NAMES.get(word, "")
    return find_smtp_command(text)


def squeeze(text: str, max_length: int = DEFAULT_LIMITS.max_diagnostic_length) -> str:
    """Join lines and runs of spaces into single spaces, cut to `max_length` characters."""
    return " ".join(text.split())[:max_length]


def build_recipient(address: str, diagnostic: str, *, remote_mta: str = "",
                    smtp_command: str = "", kind: str = FAILURE,
                    limits: Limits = DEFAULT_LIMITS) -> RecipientFields:
    """Build a recipient record from an address and the remote reply or MTA message for it."""
    diagnostic = squeeze(drop_continuation_codes(diagnostic), limits.max_diagnostic_length)
    reply_code = find_reply_code(diagnostic)
    return RecipientFields(
        final_recipient=address,
        status=find_status(diagnostic),
        reply_code=reply_code,
        diagnostic_code=diagnostic,
        diagnostic_type="SMTP" if reply_code else "",
        remote_mta=remote_mta,
        smtp_command=smtp_command or find_command(diagnostic),
        kind=kind,
    )


def merge_status_part(report: Report, message: Message) -> None:
    """Fill what a notice lacks from the delivery-status part that the MTA sent beside it.

    The status read from the reply wins, because the MTAs that call this (Exim, OpenSMTPD)
    often write only a class in the Status field, such as 5.0.0.
    """
    if not message.content_type.startswith("multipart/"):
        return
    status_report = rfc3464.decode(message)
    if status_report is None:
        return

    by_address = {row.final_recipient.lower(): row for row in status_report.recipients}
    for recipient in report.recipients:
        row = by_address.get(recipient.final_recipient.lower())
        if row is None:
            continue
        if not recipient.status and row.status:
            recipient.status = row.status
            recipient.status_from_field = True
        recipient.remote_mta = recipient.remote_mta or row.remote_mta
        recipient.reporting_mta = row.reporting_mta
        recipient.action = row.action
        recipient.kind = row.kind
        recipient.last_attempt_date = row.last_attempt_date
