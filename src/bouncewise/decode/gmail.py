"""Plain-text bounces from Gmail's outbound mail service, as sent before Gmail moved to RFC 3464.

The notice lists the recipients indented on lines of their own, then explains the failure:

    Delivery to the following recipient failed permanently:

         kijitora@example.org

    Technical details of permanent failure:
    Google tried to deliver your message, but it was rejected by the server for the
    recipient domain example.org by mx.example.org. [192.0.2.25].

    The error that the other server returned was:
    550 5.1.1 <kijitora@example.org>... No such user

Quirks: Gmail often repeats the reply code ("550 550 5.7.1 ...") and appends its own client
state as "(state 14)", which names the SMTP command that was refused. A warning says "has been
delayed" and "temporary failure" and is a delay, not a failure. Where the remote server never
answered, the only explanation is Gmail's own sentence and the socket errors in brackets.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import DELAY, FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.mail.headers import first_address, normalize_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status

NAME = "gmail"

_LIST_START = "delivery to the following recipient"
_DETAILS_START = "technical details of"
_SERVER_REPLY = "the error that the other server returned was:"

# Gmail's client state at the refusal, written as "(state N)" after the reply. The numbers are
# read from Gmail notices whose reply names the refused step: 6 for TLS, 13 for the sender
# address, 14 for a recipient address, 17 and 18 for the message content.
# NOTE: Google never documented these states; numbers missing here leave the command empty.
_STATE_COMMANDS = {"6": "STARTTLS", "13": "MAIL", "14": "RCPT", "17": "DATA", "18": "DATA"}

_STATE = re.compile(r"\s*\(state (\d{1,3})\)\.?\s*$")
_DOUBLED_CODE = re.compile(r"^([245]\d\d)[ -]\1(?=[ -])")
_REMOTE_HOST = re.compile(r"\bby ([A-Za-z0-9][A-Za-z0-9.-]{0,252}?)\.? \[([0-9A-Fa-f.:]{2,45})\]")
_LEARN_MORE = re.compile(r"\s*Learn more at \S{1,400}")


def decode(message: Message) -> Report | None:
    """Decode a Gmail plain-text bounce, or return None if the message is not one."""
    sender = message.header("from").lower()
    if "mailer-daemon@google" not in sender:
        return None
    notice = notice_text(message)
    if _DETAILS_START not in notice.lower():
        return None

    report = Report(decoded_by=NAME)
    # A Gmail notice is a few dozen lines, so max_notice_lines leaves ample room.
    for recipients, details, delayed in _blocks(notice, message.limits.max_notice_lines):
        for recipient in recipients:
            report.recipients.append(_recipient_fields(recipient, details, delayed))
    return report if report.recipients else None


def _blocks(notice: str, max_lines: int) -> list[tuple[list[str], str, bool]]:
    """Split the notice into (recipients, technical details, delayed) blocks."""
    blocks = []
    recipients: list[str] = []
    details: list[str] = []
    delayed = False
    reading = ""

    for line in notice.split("\n")[:max_lines]:
        lowered = line.strip().lower()
        if lowered.startswith(_LIST_START):
            if recipients and details:
                blocks.append((recipients, "\n".join(details), delayed))
                recipients, details = [], []
            delayed = "delayed" in lowered
            reading = "recipients"
            continue
        if lowered.startswith(_DETAILS_START):
            delayed = delayed or "temporary" in lowered
            reading = "details"
            details.append(line.strip()[len(_DETAILS_START):].partition(":")[2].strip())
            continue
        if reading == "recipients" and "@" in lowered and " " not in lowered:
            recipients.append(normalize_address(first_address(lowered) or lowered))
        elif reading == "details":
            details.append(line.strip())

    if recipients:
        blocks.append((recipients, "\n".join(details), delayed))
    return blocks


def _recipient_fields(recipient: str, details: str, delayed: bool) -> RecipientFields:
    diagnostic, remote_mta, command = _read_details(details)
    return RecipientFields(
        final_recipient=recipient,
        action="delayed" if delayed else "failed",
        status=find_status(diagnostic),
        reply_code=find_reply_code(diagnostic),
        diagnostic_code=diagnostic,
        diagnostic_type="SMTP" if find_reply_code(diagnostic) else "",
        remote_mta=remote_mta,
        smtp_command=command or find_smtp_command(diagnostic),
        kind=DELAY if delayed else FAILURE,
    )


def _read_details(details: str) -> tuple[str, str, str]:
    """Return (the remote server's reply or Gmail's own explanation, remote MTA, command)."""
    flat = " ".join(details.split())
    host = _REMOTE_HOST.search(flat)
    remote_mta = host.group(1) if host else ""

    position = flat.lower().find(_SERVER_REPLY)
    if position < 0:
        # The server never replied: Gmail's sentence and its socket errors are all there is.
        return _LEARN_MORE.sub("", flat).strip(), remote_mta, ""

    reply = flat[position + len(_SERVER_REPLY):].strip()
    command = ""
    state = _STATE.search(reply)
    if state:
        command = _STATE_COMMANDS.get(state.group(1), "")
        reply = reply[: state.start()].rstrip()
    reply = drop_continuation_codes(_DOUBLED_CODE.sub(r"\1", reply))
    return reply, remote_mta, command
