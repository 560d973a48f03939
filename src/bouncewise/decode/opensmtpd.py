"""Bounces of OpenSMTPD, the OpenBSD mail server, in both its plain-text and its DSN forms.

The notice lists each recipient on one unindented line with the reply or OpenSMTPD's own error
after a colon, as in

    An error has occurred while attempting to deliver a message for
    the following list of recipients:

    user@example.org: 550 5.1.1 <user@example.org>: Recipient address rejected

Quirks handled:
- recent versions add a delivery-status part without a Diagnostic-Code, whose Status is often
  only a class such as 5.0.0. The status is read from the reply, and from the Status field only
  where the reply has none.
- a delay notice ("A message is delayed for more than ...") lists its recipients the same way.
"""

from __future__ import annotations

from bouncewise.decode.fields import DELAY, FAILURE, Report
from bouncewise.decode.plain import (build_recipient, leading_address, merge_status_part,
                                     notice_body)
from bouncewise.mail.message import Message

NAME = "opensmtpd"

_INTRODUCTION = "this is the mailer-daemon, please do not reply"
_LIST_ENDS = "list of recipients:"


def decode(message: Message) -> Report | None:
    """Decode an OpenSMTPD notice, or return None if the message is not one."""
    notice = notice_body(message)
    lowered = notice.lower()
    start = lowered.find(_LIST_ENDS)
    if start < 0 or _INTRODUCTION not in lowered[:start]:
        return None

    kind = DELAY if "is delayed for more than" in lowered[:start] else FAILURE
    report = Report(decoded_by=NAME)
    for line in notice[start + len(_LIST_ENDS):].split("\n"):
        if line[:1].isspace() or not line.strip():
            if report.recipients:
                # The list is unindented and ends at the first blank or indented line.
                break
            continue
        address, reply = leading_address(line)
        if address:
            report.recipients.append(build_recipient(address, reply, kind=kind))
    if not report.recipients:
        return None

    merge_status_part(report, message)
    return report

