"""Bounces of Zoho Mail, sent as plain text or as HTML with no delivery-status part.

Each failed recipient has one line: the address, sometimes Zoho's own summary, then the remote
reply split into labelled codes, as in

    user@example.org Invalid Address, ERROR_CODE :550, ERROR_CODE :5.1.1 <user@example.org>: ...
    user@example.org, ERROR CODE :550 - 5.7.1 Message rejected as spam

Quirks handled: the reply code is glued to the label and followed by a comma or a dash, so the
codes are taken out of the labels and the reply is rebuilt as "550 5.1.1 text" before it is
read. The returned message's headers follow the notice with no marker line.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import Report
from bouncewise.decode.plain import build_recipient, find_address, notice_body
from bouncewise.mail.message import Message

NAME = "zoho"

# Zoho writes the label with an underscore in plain text and with a space in HTML.
_ERROR_CODE = re.compile(r"ERROR[ _]CODE\s{0,4}:\s{0,4}", re.IGNORECASE)

# Separators that Zoho puts after a code: "550, " or "550 - ".
_SEPARATORS = " ,-"
_DASH_AFTER_CODE = re.compile(r"^([245][0-9][0-9]) - ")


def decode(message: Message) -> Report | None:
    """Decode a Zoho Mail notice, or return None if the message is not one."""
    notice = notice_body(message)
    if not _ERROR_CODE.search(notice):
        return None

    report = Report(decoded_by=NAME)
    for line in notice.split("\n"):
        address = find_address(line)
        if not address or not _ERROR_CODE.search(line):
            continue
        if not line.strip().lstrip("<").lower().startswith(address.lower()):
            continue
        rest = line[line.lower().find(address.lower()) + len(address) :]
        report.recipients.append(build_recipient(address, _rebuild_reply(rest)))
    return report if report.recipients else None


def _rebuild_reply(rest: str) -> str:
    """Turn "Summary, ERROR_CODE :550, ERROR_CODE :5.1.1 text" into "550 5.1.1 text (Summary)"."""
    pieces = _ERROR_CODE.split(rest)
    summary = pieces[0].strip(" <>,:-")
    codes = [_DASH_AFTER_CODE.sub(r"\1 ", piece.strip(_SEPARATORS)) for piece in pieces[1:]]
    reply = " ".join(code for code in codes if code)
    if summary:
        return f"{reply} ({summary})" if reply else summary
    return reply
