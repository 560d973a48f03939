"""Plain-text non-delivery reports of Microsoft Exchange 2000 and 2003 (the IMS connector).

The report quotes the original's To, Subject and Sent lines, then lists each recipient on an
unindented line with the date, and the reason below it, indented, as in

    did not reach the following recipient(s):

    user@example.org on Thu, 29 Apr 2010 10:00:00 +0000
        The recipient name is not recognized
        MSEXCH:IMS:EXAMPLE:SITE:SERVER 0 (000C05A6) Unknown Recipient

Quirks handled:
- the "The MTS-ID of the original message is:" line is left out of the diagnostic, together with
  the unindented lines onto which Exchange breaks its value.
- the end of the MSEXCH line may also wrap onto an unindented line, which is kept.
"""

from __future__ import annotations

from bouncewise.decode.fields import Report
from bouncewise.decode.plain import build_recipient, leading_address, notice_body
from bouncewise.mail.message import Message

NAME = "exchange2003"

_LIST_STARTS = "did not reach the following recipient(s):"
_MTS_ID = "the mts-id of the original message is:"


def decode(message: Message) -> Report | None:
    """Decode an Exchange 2003 report, or return None if the message is not one."""
    notice = notice_body(message)
    start = notice.lower().find(_LIST_STARTS)
    if start < 0:
        return None

    report = Report(decoded_by=NAME)
    for address, details in _recipient_blocks(notice[start + len(_LIST_STARTS):]):
        report.recipients.append(build_recipient(address, " ".join(details)))
    return report if report.recipients else None


def _recipient_blocks(text: str) -> list[tuple[str, list[str]]]:
    blocks: list[tuple[str, list[str]]] = []
    current: list[str] | None = None
    in_mts_id = False

    for line in text.split("\n"):
        stripped = line.strip()
        if not stripped:
            if current:
                current = None
            continue
        indented = line[:1].isspace()
        if not indented:
            address, rest = leading_address(line)
            if address and (not rest or rest.lower().startswith("on ")):
                current = []
                blocks.append((address, current))
                in_mts_id = False
                continue
        if current is None:
            continue

        if stripped.lower().startswith(_MTS_ID):
            in_mts_id = True
            continue
        if in_mts_id and not indented:
            continue
        in_mts_id = False
        current.append(stripped)
    return blocks
