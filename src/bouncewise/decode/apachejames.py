"""Apache James 2 (and carriers' gateways built on it, such as Verizon's vtext.com): the
plain-text notice of its RemoteDelivery mailet.

    Error: Invalid user address

    Error message below:
    550 - Requested action not taken: no such user here

    Message details:
      Subject: Hello
      Sent date: Wed Apr 29 23:34:45 GMT 2015
      MAIL FROM: sender@example.net
      RCPT TO: kijitora@example.org
      From: sender@example.net

Quirks: the recipient is only on the "RCPT TO:" lines of the message details. Some gateways
fold the Content-Type of the multipart/alternative part without indenting its boundary
parameter, so the part cannot be split and its raw body is read instead.
"""

from __future__ import annotations

from bouncewise.decode.fields import Report
from bouncewise.decode.plain import build_recipient
from bouncewise.mail.headers import first_address
from bouncewise.mail.message import Message, decode_bytes

NAME = "apachejames"

_ERROR_MESSAGE = "error message below:"
_DETAILS = "message details:"
_RCPT = "rcpt to:"


def decode(message: Message) -> Report | None:
    """Decode an Apache James notice, or return None if the message is not one."""
    notice = _notice(message)
    lowered = notice.lower()
    if _ERROR_MESSAGE not in lowered or _DETAILS not in lowered or _RCPT not in lowered:
        return None

    lines = [line.strip() for line in notice.split("\n")[: message.limits.max_short_notice_lines]]
    reply = _reply(lines)
    report = Report(decoded_by=NAME)
    for line in lines:
        if line.lower().startswith(_RCPT):
            recipient = first_address(line[len(_RCPT):])
            if recipient:
                report.recipients.append(build_recipient(recipient, reply))
    return report if report.recipients else None


def _notice(message: Message) -> str:
    """Return the first text/plain part, or the raw body of a multipart part that cannot be split."""
    for part in message.walk():
        if part.content_type == "text/plain":
            return part.text()
        if part.content_type.startswith("multipart/") and part is not message and not part.children():
            data = part.body[: message.limits.max_scan_text]
            return decode_bytes(data, part.param("charset"))
    return ""


def _reply(lines: list[str]) -> str:
    """Return the lines between "Error message below:" and the next blank line."""
    reply: list[str] = []
    reading = False
    for line in lines:
        if line.lower() == _ERROR_MESSAGE:
            reading = True
        elif reading and not line:
            if reply:
                break
        elif reading:
            reply.append(line)
    return " ".join(reply)
