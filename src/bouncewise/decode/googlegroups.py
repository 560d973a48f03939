"""Google Groups: the notice that Gmail's mailer-daemon sends when a post to a group is refused.

The notice is written in the sender's language and carries no SMTP reply, no status and no
delivery-status part. It greets the sender, explains in one paragraph, lists possible causes,
and links the Google Groups help centre:

    Hello sender@example.net,

    We're writing to let you know that the group you tried to contact (staff) may not exist,
    or you may not have permission to post messages to the group. ...

     * You might have spelled or formatted the group name incorrectly.

The refused group address is in the X-Failed-Recipients header. The explanation paragraph is
the diagnostic, in whatever language it was written.
"""

from __future__ import annotations

from bouncewise.decode.fields import FAILURE, RecipientFields, Report
from bouncewise.decode.notice import notice_text
from bouncewise.mail.headers import normalize_address
from bouncewise.mail.message import Message

NAME = "googlegroups"

_HELP_CENTRE = "groups.google.com"


def decode(message: Message) -> Report | None:
    """Decode a Google Groups refusal notice, or return None if the message is not one."""
    if "mailer-daemon@google" not in message.header("from").lower():
        return None
    failed = message.header("x-failed-recipients")
    notice = notice_text(message)
    if not failed or _HELP_CENTRE not in notice.lower():
        return None

    diagnostic = _explanation(notice, message.limits.max_diagnostic_length)
    report = Report(decoded_by=NAME)
    for value in failed.split(","):
        if "@" in value:
            report.recipients.append(RecipientFields(
                final_recipient=normalize_address(value),
                action="failed",
                diagnostic_code=diagnostic,
                kind=FAILURE,
            ))
    return report if report.recipients else None


def _explanation(notice: str, max_length: int) -> str:
    """Return the first paragraph after the greeting: the one that names no address."""
    for paragraph in notice.split("\n\n"):
        text = " ".join(paragraph.split())
        if text and "@" not in text and not text.startswith("*"):
            return text[:max_length]
    return ""
