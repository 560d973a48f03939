"""The human-readable part of a DSN, read for what the machine-readable part leaves out: the
full reply of the remote server, the SMTP command it replied to, and the host that sent it.

Postfix writes one paragraph per recipient, continued on indented lines:

    <kijitora@example.org>: host mx.example.org[192.0.2.25] said: 550 5.1.1
        <kijitora@example.org>: Recipient address rejected: User unknown (in reply
        to RCPT TO command)

Sendmail writes a session transcript: the host it talked to, the commands it sent (">>>"), the
replies it got ("<<<", one line per line of a multi-line reply), then its own summary line:

    ... while talking to mx.example.org.:
    >>> RCPT To:<kijitora@example.org>
    <<< 550 5.1.1 <kijitora@example.org>... User unknown
    550 5.1.1 <kijitora@example.org>... User unknown

Other MTAs (Exchange, Messaging Server, Gmail) name the recipient on a line and explain the
failure beside or below it; `reply_for` falls back to the lines around that mention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.decode.replies import drop_continuation_codes
from bouncewise.smtp import find_reply_code, find_smtp_command

# A header field quoted in a notice ("To: kijitora@example.org"): a mention there explains nothing.
_QUOTED_HEADER = re.compile(r"^\s{0,8}(?:to|cc|bcc|from|date|subject|message-id|reply-to|"
                            r"sender|return-path|received|x-[a-z0-9-]{1,40})\s{0,4}:",
                            re.IGNORECASE)

# Postfix: "(in reply to RCPT TO command)" at the end of a paragraph.
_IN_REPLY_TO = re.compile(r"\s{0,8}\(in reply to ([A-Za-z ]{3,30}?) command\)\s{0,8}$",
                          re.IGNORECASE)

# Postfix: "host mx.example.org[192.0.2.25] said:" names the remote MTA.
_POSTFIX_HOST = re.compile(r"\bhost ([A-Za-z0-9._-]{1,253})\[")

# Sendmail: "... while talking to mx.example.org.:"
_TALKING_TO = re.compile(r"^\.\.\.\s{0,4}while talking to ([^\s:]{1,253}?)\.?:\s{0,8}$",
                         re.IGNORECASE)

# Commands as Sendmail echoes them; "." ends the message text, so its reply is DATA's.
_SMTP_VERBS = {"RCPT": "RCPT", "MAIL": "MAIL", "DATA": "DATA", "BDAT": "DATA", ".": "DATA",
               "EHLO": "EHLO", "HELO": "HELO", "STARTTLS": "STARTTLS", "AUTH": "AUTH",
               "QUIT": "QUIT", "RSET": "RSET"}

# Characters compared when deciding whether two texts are the same reply.
_SAME_REPLY_PREFIX = 40


@dataclass(slots=True)
class NoticeReply:
    """The reply that the human-readable part gives for one recipient."""

    text: str = ""
    command: str = ""
    remote_mta: str = ""
    # True when `text` is a reply received from the remote server, not the MTA's own words.
    from_remote: bool = False
    # True when the notice ties `text` to the recipient, not to the whole transaction.
    by_address: bool = False


def reply_for(notice: str, addresses: list[str], diagnostic: str = "",
              limits: Limits = DEFAULT_LIMITS) -> NoticeReply:
    """Return the reply the notice gives for the first of `addresses` it explains, or an empty one.

    `addresses` lists the final recipient first, then the original recipient. `diagnostic` is
    the DSN's Diagnostic-Code, if any: a transcript reply that repeats it is preferred.
    """
    if not notice:
        return NoticeReply()
    lowered = [address.lower() for address in addresses if address]

    found = sendmail_reply(notice, lowered, diagnostic, limits)
    if found.text:
        return found
    for address in lowered:
        found = postfix_reply(notice, address, limits)
        if found.text:
            return found
    for address in lowered:
        found = nearby_reply(notice, address, limits)
        if found.text:
            return found
    return NoticeReply()


def postfix_reply(notice: str, address: str, limits: Limits = DEFAULT_LIMITS) -> NoticeReply:
    """Read the Postfix paragraph that starts with `<address>`."""
    lines = notice.split("\n")
    marker = "<" + address + ">"
    for index, line in enumerate(lines):
        if not line.lstrip().lower().startswith(marker):
            continue
        paragraph = [line.strip()]
        for following in lines[index + 1 : index + limits.max_paragraph_lines]:
            if not following[:1].isspace() or not following.strip():
                break
            paragraph.append(following.strip())
        found = _postfix_explanation(" ".join(paragraph), limits.max_diagnostic_length)
        found.by_address = True
        return found
    return NoticeReply()


def _postfix_explanation(paragraph: str, max_length: int) -> NoticeReply:
    # The explanation follows the address and an optional "(expanded from <...>)".
    head_end = paragraph.find(">: ")
    expanded = paragraph.find(">): ")
    if expanded >= 0 and (head_end < 0 or expanded < head_end):
        text = paragraph[expanded + 4 :]
    elif head_end >= 0:
        text = paragraph[head_end + 3 :]
    else:
        return NoticeReply()

    reply = NoticeReply(text=text.strip()[:max_length])
    host = _POSTFIX_HOST.search(text)
    if host:
        reply.remote_mta = host.group(1)
    for separator in (" said: ", " refused to talk to me: "):
        position = text.find(separator)
        if position >= 0:
            reply.text = text[position + len(separator) :].strip()[:max_length]
            reply.from_remote = True
            if "refused to talk" in separator:
                reply.command = "CONN"
            break

    command = _IN_REPLY_TO.search(reply.text)
    if command:
        reply.command = find_smtp_command("in reply to " + command.group(1))
        reply.text = reply.text[: command.start()].rstrip()
    if reply.from_remote:
        reply.text = drop_continuation_codes(reply.text)
    return reply


@dataclass(slots=True)
class _ServerReply:
    host: str
    command: str
    command_line: str
    # Characters kept of the joined reply.
    max_length: int
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return drop_continuation_codes(" ".join(self.lines))[: self.max_length]


def same_reply(first: str, second: str) -> bool:
    """Return True if two texts start alike, as a Diagnostic-Code and the reply it copies do."""
    first = " ".join(first.split())[:_SAME_REPLY_PREFIX].lower()
    second = " ".join(second.split())[:_SAME_REPLY_PREFIX].lower()
    return bool(first and second) and (first.startswith(second) or second.startswith(first))


def sendmail_reply(notice: str, addresses: list[str], diagnostic: str = "",
                   limits: Limits = DEFAULT_LIMITS) -> NoticeReply:
    """Read a Sendmail session transcript for the reply to one of `addresses`."""
    start = notice.lower().find("transcript of session follows")
    if start < 0:
        return NoticeReply()
    max_length = limits.max_diagnostic_length
    replies, summaries = _read_transcript(notice[start:].split("\n")[1:], max_length)

    chosen = next((reply for reply in replies if same_reply(reply.text, diagnostic)), None)
    if chosen is None:
        chosen = _reply_to_recipient(replies, addresses)
    if chosen is not None:
        by_address = any(address in (chosen.text + " " + chosen.command_line).lower()
                         for address in addresses)
        return NoticeReply(text=chosen.text, command=chosen.command or "CONN",
                           remote_mta=chosen.host, from_remote=True, by_address=by_address)

    for line in summaries:
        if any(address in line.lower() for address in addresses):
            return NoticeReply(text=line[:max_length])

    # A local recipient appears by its local part alone ("kijitora... Deferred: ...").
    local_parts = [address.partition("@")[0] + "..." for address in addresses]
    for line in summaries:
        if any(line.lower().lstrip("<").startswith(local) for local in local_parts):
            return NoticeReply(text=line[:max_length])

    # A summary line with a reply code and no address is Sendmail's verdict on the whole
    # message, such as "451 4.0.0 Operating system error" from a local mailer.
    for line in summaries:
        if find_reply_code(line) and "@" not in line:
            return NoticeReply(text=line[:max_length])
    reason = _listed_reason(notice[:start], addresses, max_length)
    return NoticeReply(text=reason)


def _read_transcript(lines: list[str], max_length: int) -> tuple[list[_ServerReply], list[str]]:
    replies: list[_ServerReply] = []
    summaries: list[str] = []
    host, command, command_line = "", "", ""
    current: _ServerReply | None = None

    for line in lines:
        stripped = line.strip()
        if stripped.startswith("-----"):
            break
        talking = _TALKING_TO.match(stripped)
        if talking:
            host, command, command_line, current = talking.group(1), "", "", None
        elif stripped.startswith(">>>"):
            command_line = stripped[3:].strip()
            command = _SMTP_VERBS.get(command_line.split(" ")[0].split(":")[0].upper(), "")
            current = None
        elif stripped.startswith("<<<"):
            text = stripped[3:].strip()
            if current is None or not _continues(current):
                current = _ServerReply(host, command, command_line, max_length)
                replies.append(current)
            current.lines.append(text)
        elif stripped:
            current = None
            summaries.append(stripped)

    _mark_pipelined(replies)
    return replies, summaries


def _mark_pipelined(replies: list[_ServerReply]) -> None:
    """Give pipelined RCPT replies their command back.

    With PIPELINING, Sendmail sends RCPT and DATA together and echoes only ">>> DATA". Every
    reply under it but the last is the reply to one RCPT.
    """
    index = 0
    while index < len(replies):
        end = index
        while (end + 1 < len(replies) and replies[end + 1].command == replies[index].command
               and replies[end + 1].command_line == replies[index].command_line
               and replies[end + 1].host == replies[index].host):
            end += 1
        if replies[index].command_line.upper() == "DATA":
            for reply in replies[index:end]:
                reply.command = "RCPT"
        index = end + 1


def _continues(reply: _ServerReply) -> bool:
    """Return True if the last line read of `reply` announced more lines ("550-...")."""
    last = reply.lines[-1]
    return len(last) > 3 and last[:3].isdigit() and last[3] == "-"


def _reply_to_recipient(replies: list[_ServerReply], addresses: list[str]) -> _ServerReply | None:
    errors = [reply for reply in replies if find_reply_code(reply.text)[:1] in ("4", "5")]
    for reply in errors:
        if reply.command == "RCPT" and any(a in reply.command_line.lower() for a in addresses):
            return reply
    for reply in errors:
        if any(address in reply.text.lower() for address in addresses):
            return reply

    # A reply to any other command than RCPT fails every recipient of the transaction.
    for reply in errors:
        if reply.command != "RCPT" and reply.command != "QUIT":
            return reply
    return None


def _listed_reason(text: str, addresses: list[str], max_length: int) -> str:
    """Return the "(reason: ...)" that Sendmail writes under an address in its failed list."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if not any(address in line.lower() for address in addresses):
            continue
        for following in lines[index + 1 : index + 3]:
            stripped = following.strip()
            if stripped.lower().startswith("(reason:") and stripped.endswith(")"):
                return stripped[8:-1].strip()[:max_length]
    return ""


def nearby_reply(notice: str, address: str, limits: Limits = DEFAULT_LIMITS) -> NoticeReply:
    """Return the lines that explain a mention of `address`, skipping quoted header fields.

    A mention with nothing beside it is a list of failed recipients; the sentence above the
    list then explains them all.
    """
    lines = notice.split("\n")
    for index, line in enumerate(lines):
        if address not in line.lower() or _QUOTED_HEADER.match(line):
            continue
        paragraph: list[str] = []
        for following in lines[index : index + limits.max_paragraph_lines]:
            if not following.strip():
                if paragraph:
                    break
                continue
            paragraph.append(following.strip())
        text = " ".join(paragraph)
        if len(text.lower().replace(address, "").strip(" <>:;,.\t")) >= 8:
            return NoticeReply(text=text[: limits.max_diagnostic_length], by_address=True)
        above = _line_above(lines, index)
        if above:
            return NoticeReply(text=above[: limits.max_diagnostic_length])
    return NoticeReply()


def _line_above(lines: list[str], index: int) -> str:
    for line in reversed(lines[max(0, index - 4) : index]):
        if line.strip():
            return line.strip()
    return ""
