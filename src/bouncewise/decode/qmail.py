"""qmail's plain-text bounces (qmail-send, netqmail, vpopmail's vdelivermail) and the notices of
MTAs that copy its layout ("Message from example.com. Unable to deliver message to the following
address(es).").

Each failed recipient is a line `<address>:` at the start of a line, and qmail's account of the
attempt follows up to a blank line, as in

    <user@example.org>:
    192.0.2.1 does not like recipient.
    Remote host said: 550 5.1.1 No such user here
    Giving up on 192.0.2.1.

qmail names the stage of the session in its own words ("does not like recipient", "failed after I
sent the message", "Connected to ... but sender was rejected"), which give the SMTP command and
the remote host. Its own errors end in a status code such as `(#5.1.1)`. Quirks handled: the
trailer "I'm not going to try again; this message has been in the queue too long." glued to the
reason or broken over two lines; "Giving up on" and "(Other MXes tried: ...)" lines; a
`From: <...> RCPT: <...>` prefix that some patched builds add.
"""

from __future__ import annotations

import re

from bouncewise.config import Limits
from bouncewise.decode.fields import RecipientFields, Report
from bouncewise.decode.plain import (build_recipient, leading_address,
                                     notice_body)
from bouncewise.mail.message import Message

NAME = "qmail"

# Lower-case fragments of the introduction of qmail's notice and of its imitators'.
_QMAIL_SEND = "this is the qmail-send program"
_INTRODUCTIONS = (
    _QMAIL_SEND,
    "wasn't able to deliver your message to the following addresses",
    "unable to deliver message to the following address",
    "message to the following address(es) could not be delivered",
)

# qmail's descriptions of how far the session got: the host named, and the command refused.
_HOST = r"([A-Za-z0-9][A-Za-z0-9.:-]{0,254})"
_STAGES = (
    (re.compile(_HOST + r" does not like recipient"), "RCPT"),
    (re.compile(_HOST + r" failed after i sent the message"), "DATA"),
    (re.compile(r"connected to " + _HOST + r" but sender was rejected"), "MAIL"),
    (re.compile(r"connected to " + _HOST + r" but my name was rejected"), "HELO"),
    (re.compile(r"connected to " + _HOST + r" but greeting failed"), "CONN"),
    (re.compile(r"connected to " + _HOST + r" but connection died"), ""),
    (re.compile(r"most progress was (rcpt|mail|data|helo|ehlo)"), ""),
)
_SAID = re.compile(r"remote host " + _HOST + r" said:", re.IGNORECASE)
_PROGRESS_COMMANDS = {"rcpt": "RCPT", "mail": "MAIL", "data": "DATA", "helo": "HELO",
                      "ehlo": "EHLO"}

# Lines about other attempts rather than this recipient's error.
_REMARKS = ("giving up on ", "(other mxes tried")

_GIVE_UP = "i'm not going to try again; this message has been in the queue too long."
_PATCH_PREFIX = re.compile(r"^From: <[^<>\s]{0,320}> RCPT: <[^<>\s]{0,320}> ?")


def decode(message: Message) -> Report | None:
    """Decode a qmail-style notice, or return None if the message is not one."""
    notice = notice_body(message)
    flat = " ".join(notice[:4096].lower().split())
    if not any(fragment in flat for fragment in _INTRODUCTIONS):
        return None

    # qmail-send appends the trailer about the queue lifetime to the last error, which is the
    # cause. Its imitators write the trailer as the reason itself, so there it is kept.
    drop_give_up = _QMAIL_SEND in flat
    report = Report(decoded_by=NAME)
    seen: set[str] = set()
    for address, details in _recipient_blocks(notice):
        if address in seen:
            continue
        seen.add(address)
        report.recipients.append(_recipient(address, details, drop_give_up, message.limits))
    return report if report.recipients else None


def _recipient_blocks(notice: str) -> list[tuple[str, list[str]]]:
    """Return each `<address>:` line with the lines that follow it up to a blank line."""
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    for line in notice.split("\n"):
        stripped = line.strip()
        if stripped.startswith("<") and stripped.endswith(":"):
            address = leading_address(stripped)[0]
            if address:
                current = []
                blocks.append((address, current))
                continue
        if not stripped:
            current = None
        elif current is not None:
            current.append(stripped)
    return blocks


def _recipient(address: str, details: list[str], drop_give_up: bool,
               limits: Limits) -> RecipientFields:
    kept = [line for line in details if not line.lower().startswith(_REMARKS)]
    text = _PATCH_PREFIX.sub("", " ".join(kept)[: limits.max_diagnostic_length * 2])
    if drop_give_up:
        text = _without_give_up(text)

    remote_mta, command = _stage(text)
    lowered = text.lower()
    said = lowered.find("remote host said:")
    if said >= 0:
        reply = text[said + len("remote host said:"):]
    else:
        match = _SAID.search(text)
        reply = text[match.end():] if match else text
    return build_recipient(address, reply.strip(), remote_mta=remote_mta, smtp_command=command,
                           limits=limits)


def _without_give_up(text: str) -> str:
    """Drop qmail's trailer about the queue lifetime, which does not name the cause."""
    flat = " ".join(text.split())
    position = flat.lower().find(_GIVE_UP)
    if position < 0:
        return flat
    return (flat[:position] + flat[position + len(_GIVE_UP):]).strip().rstrip("/ ").strip()


def _stage(text: str) -> tuple[str, str]:
    """Return the remote host and the SMTP command named by qmail's account of the session."""
    lowered = text.lower()
    for pattern, command in _STAGES:
        match = pattern.search(lowered)
        if not match:
            continue
        if pattern.pattern.startswith("most progress"):
            said = _SAID.search(text)
            return (said.group(1) if said else ""), _PROGRESS_COMMANDS[match.group(1)]
        start = match.start(1)
        return text[start : start + len(match.group(1))], command
    return "", ""
