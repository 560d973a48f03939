"""Reading SMTP reply codes and RFC 3463 enhanced status codes out of reply text.

Both the decoders (which copy a bounce's fields) and the judge (which reads a bare reply line)
use these functions, so they live beside both packages rather than in either.
"""

from __future__ import annotations

import re

# An enhanced status code such as 5.7.1 or 4.4.7, not part of an IP address or a version number.
_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d]|\.\d)")

# A three-digit reply code where a reply starts: at line start, or after white space, a colon,
# a bracket or a quote.
# The second digit is 0 to 5 (RFC 5321 section 4.2.1).
_REPLY_CODE = re.compile(r"(?:^|[\s:(\[\"'])([245][0-5][0-9])(?=[ -]|$)", re.MULTILINE)



def find_status(text: str) -> str:
    """Return the first failure (4.X.X or 5.X.X) enhanced status code in `text`, else the first
    success code, else "".

    A transcript quotes the 2.X.X replies before the one that failed, so those are skipped.
    """
    success = ""
    for match in _STATUS.finditer(text):
        code = ".".join(str(int(group)) for group in match.groups())
        if code[0] != "2":
            return code
        success = success or code
    return success


def find_reply_code(text: str) -> str:
    """Return the first failure (4XX or 5XX) reply code in `text`, else the first one, else ""."""
    first = ""
    for match in _REPLY_CODE.finditer(text):
        code = match.group(1)
        if code[0] != "2":
            return code
        first = first or code
    return first


# The command after "after", "in reply to" and the like. Command names must be upper case, as
# MTAs write them, so that English such as "during data migration" is not read as a command.
# The phrases for the end of DATA and for the greeting may be in any case.
_COMMAND_PATTERN = re.compile(
    r"(?i:\b(?:after|in reply to|response to|during)\s+(?:the\s+)?(?:pipelined\s+)?"
    r"(?:end of\s+)?(?:final\s+)?)"
    r"(CONNECT|EHLO|HELO|STARTTLS|AUTH|MAIL(?:\s+FROM)?|RCPT(?:\s+TO)?|DATA|BDAT|QUIT|"
    r"(?i:end of data|initial connection|greeting|banner))\b"
)

_COMMAND_NAMES = {
    "mail": "MAIL", "mail from": "MAIL", "rcpt": "RCPT", "rcpt to": "RCPT", "data": "DATA",
    "end of data": "DATA", "bdat": "DATA", "ehlo": "EHLO", "helo": "HELO", "starttls": "STARTTLS",
    "auth": "AUTH", "quit": "QUIT", "initial connection": "CONN", "greeting": "CONN",
    "banner": "CONN",
}


# A Sendmail-style transcript line with the command the client sent, as in ">>> RCPT To:<...>".
_TRANSCRIPT_COMMAND = re.compile(r">>> ?(EHLO|HELO|MAIL|RCPT|DATA|BDAT|STARTTLS|AUTH|QUIT)\b",
                                 re.IGNORECASE)
_TRANSCRIPT_FAILURE = re.compile(r"<<< ?[45]\d\d")


def find_smtp_command(text: str) -> str:
    """Return the SMTP command that the error followed according to a diagnostic, or ""."""
    match = _COMMAND_PATTERN.search(text)
    if not match:
        return _transcript_command(text)
    word = " ".join(match.group(1).lower().split())
    if word == "connect":
        return "CONN"
    return _COMMAND_NAMES.get(word, "")


def _transcript_command(text: str) -> str:
    """Return the last command a transcript shows before its first failure reply, or ""."""
    failure = _TRANSCRIPT_FAILURE.search(text)
    end = failure.start() if failure else len(text)
    command = ""
    for match in _TRANSCRIPT_COMMAND.finditer(text, 0, end):
        command = match.group(1).upper()
    return "DATA" if command == "BDAT" else command


def status_class(code: str) -> str:
    """Return the class digit ("2", "4" or "5") of a status or reply code, or ""."""
    return code[:1] if code[:1] in ("2", "4", "5") else ""
