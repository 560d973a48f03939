"""SMTP replies that span several lines, as decoders find them joined into one text.

A server writes a multi-line reply (RFC 5321 section 4.2.1) with its code on every line, a
hyphen after the code on all lines but the last, and often the enhanced status code again:

    552-5.2.2 The recipient's mailbox is full and cannot
    552-5.2.2 take more mail. Please ask the recipient to
    552 5.2.2 free some space.

A notice or a folded Diagnostic-Code joins these lines, and MTAs that rewrap the text leave
the repeated prefixes in the middle of sentences. `drop_continuation_codes` removes them.
"""

from __future__ import annotations

import re

# The start of the first line of a multi-line reply: the code, a hyphen, and an optional
# enhanced status code (RFC 3463) followed by a space.
_MULTILINE_START = re.compile(r"([245][0-9][0-9])-(?:([245]\.[0-9]{1,3}\.[0-9]{1,3}) )?")


def drop_continuation_codes(reply: str) -> str:
    """Remove the code prefixes of a joined multi-line reply's continuation lines.

    The first line's prefix is kept. A later prefix is removed where it repeats the first
    line's reply code, followed by the same enhanced status code when the first line has one.
    The result has single spaces between words. A reply that does not start with a
    multi-line prefix such as "550-" is returned unchanged.
    """
    stripped = reply.strip()
    match = _MULTILINE_START.match(stripped)
    if match is None:
        return reply
    code, status = match.group(1), match.group(2)

    reply_words: list[str] = []
    words = stripped[match.end() :].split()
    index = 0
    while index < len(words):
        word = words[index]
        following = words[index + 1] if index + 1 < len(words) else ""
        if status and word == code + "-" + status:
            index += 1
        elif status and word == code and following == status:
            index += 2
        elif not status and word == code:
            index += 1
        elif not status and word.startswith(code + "-"):
            # "550-text" when the continuation line has no space after its hyphen.
            rest = word[len(code) + 1 :]
            if rest:
                reply_words.append(rest)
            index += 1
        else:
            reply_words.append(word)
            index += 1
    first_prefix = stripped[: match.end()]
    if stripped[match.end() : match.end() + 1].isspace():
        first_prefix += " "
    return first_prefix + " ".join(reply_words)
