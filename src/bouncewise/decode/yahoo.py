"""Plain-text bounces from Yahoo Mail's outbound MTA (also run by Yahoo! JAPAN, and copied by
some relays), subject "Failure Notice".

Each failed recipient is a line `<address>:` followed by the remote server's reply:

    Sorry, we were unable to deliver your message to the following address.

    <kijitora@example.org>:
    Remote host said: 550 5.1.1 <kijitora@example.org>... No such user [RCPT_TO]

Quirks: the reply may start on the line after "Remote host said:", and the refused SMTP command
follows it in brackets ([RCPT_TO], [MAIL_FROM], [DATA]). Shorter notices write the reply code
with a colon ("550: 5.1.1 ..."), and notices about DNS or retries carry no reply at all.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.mail.headers import normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "yahoo"

_OPENING = "we were unable to deliver your message to the following address"
_REMOTE_SAID = "remote host said:"

_RECIPIENT_LINE = re.compile(r"^<([^\s<>]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>:\s*(.{0,2000})$")
_COMMAND_TAG = re.compile(r"\s*\[(RCPT_TO|MAIL_FROM|DATA|CONNECT|EHLO|HELO)\]\s*$")
_COLON_CODE = re.compile(r"^([245]\d\d):\s?")

_TAG_COMMANDS = {"RCPT_TO": "RCPT", "MAIL_FROM": "MAIL", "DATA": "DATA", "CONNECT": "CONN",
                 "EHLO": "EHLO", "HELO": "HELO"}


def decode(message: Message) -> Report | None:
    """Decode a Yahoo "Failure Notice", or return None if the message is not one."""
    notice = notice_text(message)
    if _OPENING not in notice.lower():
        return None

    report = Report(decoded_by=NAME)
    for recipient, reply_lines in _recipient_blocks(notice, message.limits.max_reply_lines):
        report.recipients.append(_recipient_fields(recipient, reply_lines))
    return report if report.recipients else None


def _recipient_blocks(notice: str, max_reply_lines: int) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    for line in notice.split("\n"):
        stripped = line.strip()
        match = _RECIPIENT_LINE.match(stripped)
        if match:
            blocks.append((normalize_address(match.group(1)), []))
            if match.group(2):
                blocks[-1][1].append(match.group(2))
            continue
        if blocks and stripped and len(blocks[-1][1]) < max_reply_lines:
            blocks[-1][1].append(stripped)
    return blocks


def _recipient_fields(recipient: str, reply_lines: list[str]) -> RecipientFields:
    reply = drop_continuation_codes(" ".join(reply_lines))
    if reply.lower().startswith(_REMOTE_SAID):
        reply = reply[len(_REMOTE_SAID):].strip()

    command = ""
    tag = _COMMAND_TAG.search(reply)
    if tag:
        command = _TAG_COMMANDS[tag.group(1)]
        reply = reply[: tag.start()].rstrip()

    reply_code = find_reply_code(reply)
    colon_code = _COLON_CODE.match(reply)
    if colon_code:
        reply_code = colon_code.group(1)

    return RecipientFields(
        final_recipient=recipient,
        action="failed",
        status=find_status(reply),
        reply_code=reply_code,
        diagnostic_code=reply,
        diagnostic_type="SMTP" if reply_code else "",
        smtp_command=command or find_smtp_command(reply),
    )
