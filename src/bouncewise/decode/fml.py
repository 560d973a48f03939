"""fml, the Japanese mailing list manager: the notices its list server sends to a poster or to
the list's admin address, with an `X-MLServer: fml ...` header.

    Subject: Loop Alert: Duplicated Message-ID (staff ML)

    Duplicated Message-ID in <staff@example.org>.

    Original mail as follows:
       ...

Quirks: fml names the kind of error only in the Subject (such as "Loop Alert:"), and the body
names the list address in angle brackets. The list address is the recipient, and the Subject and the first sentences together
are the diagnostic.
"""

from __future__ import annotations

import re

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.mail.headers import decode_words, first_address, normalize_address
from bouncewise.mail.message import Message

NAME = "fml"

_RETURNED_MAIL = "original mail as follows"

_ANGLE_ADDRESS = re.compile(r"<([^\s<>]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252})>")


def decode(message: Message) -> Report | None:
    """Decode an fml error notice, or return None if the message is not one."""
    if not message.header("x-mlserver").lower().startswith("fml"):
        return None
    # Every post an fml list sends carries X-MLServer; only error notices return the mail.
    if _RETURNED_MAIL not in message.text().lower():
        return None
    subject = decode_words(message.header("subject")).strip()
    notice = notice_text(message)
    match = _ANGLE_ADDRESS.search(notice)
    if match is None:
        return None

    sentences = " ".join(notice.split())[: message.limits.max_notice_summary_length]
    report = Report(decoded_by=NAME, sender=first_address(message.header("to")))
    report.recipients.append(RecipientFields(
        final_recipient=normalize_address(match.group(1)),
        action="failed",
        diagnostic_code=f"{subject}: {sentences}" if subject else sentences,
        kind=FAILURE,
    ))
    return report
