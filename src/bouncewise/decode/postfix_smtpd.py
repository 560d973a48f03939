"""Postfix's report to the postmaster of errors in an incoming SMTP session, sent when
`notify_classes` includes "protocol" or "resource" (Subject "Postfix SMTP server: errors from
client.example.net[192.0.2.1]"). It is no DSN: the body is the session transcript, commands the
client sent marked "In:" and replies Postfix gave marked "Out:", long lines continued indented:

    Transcript of session follows.

     In:  RCPT TO:<kijitora@example.org>
     Out: 250 2.1.5 Ok
     In:  DATA
     Out: 354 End data with <CR><LF>.<CR><LF>
     Out: 451 4.3.0 Error: queue file write error

Each recipient of the transaction is reported with the first error reply Postfix gave after
its RCPT TO, and the command it replied to.
"""

from __future__ import annotations

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.mail.headers import first_address
from bouncewise.mail.message import Message
from bouncewise.smtp import find_reply_code, find_status

NAME = "postfix-smtpd"

_SUBJECT = "postfix smtp server: errors from"
_TRANSCRIPT = "transcript of session follows"

_COMMANDS = {"MAIL": "MAIL", "RCPT": "RCPT", "DATA": "DATA", "BDAT": "DATA", "EHLO": "EHLO",
             "HELO": "HELO", "STARTTLS": "STARTTLS", "AUTH": "AUTH"}


def decode(message: Message) -> Report | None:
    """Decode a Postfix SMTP server error report, or return None if the message is not one."""
    if not message.decoded_header("subject").lower().startswith(_SUBJECT):
        return None
    notice = notice_text(message)
    start = notice.lower().find(_TRANSCRIPT)
    if start < 0:
        return None

    recipients: list[str] = []
    failures: dict[str, tuple[str, str]] = {}
    command = ""
    for kind, text in _entries(notice[start:].split("\n")[1:]):
        if kind == "in":
            command = _COMMANDS.get(text.split(" ")[0].split(":")[0].upper(), "")
            if command == "RCPT":
                recipients.append(first_address(text))
            continue
        if find_reply_code(text)[:1] not in ("4", "5"):
            continue
        # A refused RCPT fails its own recipient; any later refusal fails all of them.
        affected = recipients[-1:] if command == "RCPT" else recipients
        for recipient in affected:
            failures.setdefault(recipient, (text, command))

    report = Report(decoded_by=NAME)
    for recipient in recipients:
        if recipient and recipient in failures:
            reply, failed_command = failures[recipient]
            report.recipients.append(RecipientFields(
                final_recipient=recipient, status=find_status(reply),
                reply_code=find_reply_code(reply), diagnostic_code=reply, diagnostic_type="SMTP",
                smtp_command=failed_command, kind=FAILURE))
    return report if report.recipients else None


def _entries(lines: list[str]) -> list[tuple[str, str]]:
    """Return ("in" or "out", text) per transcript entry, joining continued lines."""
    entries: list[tuple[str, list[str]]] = []
    for line in lines:
        stripped = line.strip()
        marker = stripped[:4].lower()
        if marker in ("in: ", "out:"):
            entries.append((marker.rstrip(": "), [stripped[4:].strip()]))
        elif stripped and line[:1].isspace() and entries:
            entries[-1][1].append(stripped)
        elif stripped:
            break
    return [(kind, " ".join(parts)) for kind, parts in entries]
