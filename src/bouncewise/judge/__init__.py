"""The judge: turn the fields a decoder read into a reason, a category, hard or soft, and advice.

It reads only a plain `Evidence` record, never a raw message, so the same rules serve bounces,
bare reply lines from logs, and the gate's check of its own reply texts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bouncewise.judge.categories import category_of, is_hard_bounce
from bouncewise.judge.codes import DERIVED_STATUS, STATUS_REASONS
from bouncewise.judge.reasons import normalize_text, reason_from_text
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status, status_class

__all__ = ["Evidence", "Verdict", "judge", "advice_for"]

# Kinds of report whose reason follows from the kind alone.
_KIND_REASONS = {"feedback": "feedback", "auto-reply": "vacation", "delivered": "delivered"}

# Reasons whose phrases name the real cause even where the status code says something else:
# servers often send 5.1.1 or 5.7.1 with a text that says spam, blocklist or SPF.
_TEXT_OVER_CODE = frozenset((
    "virusdetected", "spamdetected", "authfailure", "requireptr", "failedstarttls", "badreputation",
    "blocked", "norelaying", "expired", "speeding", "toomanyconn", "mailboxfull", "suspend",
    "notaccept", "hasmoved", "mesgtoobig", "rejected", "securityerror", "systemfull",
))

# The reason when no phrase and no code decides, by the SMTP command the error followed.
_COMMAND_REASONS = {"CONN": "blocked", "EHLO": "blocked", "HELO": "blocked", "MAIL": "rejected",
                    "STARTTLS": "failedstarttls", "AUTH": "securityerror"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the judge reads: the fields of one recipient's failure, as plain strings."""

    status: str = ""
    reply_code: str = ""
    diagnostic: str = ""
    smtp_command: str = ""
    action: str = ""
    kind: str = "failure"


@dataclass(frozen=True, slots=True)
class Verdict:
    """The judge's decision for one recipient."""

    reason: str
    category: str
    hard_bounce: bool
    status: str
    reply_code: str
    smtp_command: str
    advice: str


def judge(evidence: Evidence) -> Verdict:
    """Decide the reason, category and hard-bounce flag for one recipient's failure."""
    status = evidence.status or find_status(evidence.diagnostic)
    reply_code = evidence.reply_code or find_reply_code(evidence.diagnostic)
    command = evidence.smtp_command or find_smtp_command(evidence.diagnostic)

    reason = _reason(evidence, status, command)

    if not status:
        status = _derived_status(reason, reply_code, evidence.kind)
    permanent = (status_class(status) or status_class(reply_code)) == "5"
    return Verdict(
        reason=reason,
        category=category_of(reason),
        hard_bounce=is_hard_bounce(reason, permanent),
        status=status,
        reply_code=reply_code,
        smtp_command=command,
        advice=advice_for(reason),
    )


def _reason(evidence: Evidence, status: str, command: str) -> str:
    if evidence.kind in _KIND_REASONS:
        return _KIND_REASONS[evidence.kind]

    text_reason = reason_from_text(normalize_text(evidence.diagnostic))
    code_reason = STATUS_REASONS.get(status.partition(".")[2], "")

    if text_reason == "userunknown" and command == "DATA":
        # A recipient refused after the message was sent was refused for its content.
        text_reason = "filtered"

    if text_reason and (text_reason in _TEXT_OVER_CODE or not code_reason):
        return text_reason
    if code_reason:
        return code_reason
    if command in _COMMAND_REASONS:
        return _COMMAND_REASONS[command]
    if evidence.kind == "delay" or evidence.action == "delayed":
        return "expired"
    return "onhold" if status_class(status) == "4" else "undefined"


def _derived_status(reason: str, reply_code: str, kind: str) -> str:
    digit = status_class(reply_code) or ("4" if kind == "delay" else "5")
    if kind in _KIND_REASONS:
        return "2.0.0" if reason == "delivered" else ""
    detail = DERIVED_STATUS.get(reason)
    return f"{digit}.{detail}" if detail else f"{digit}.0.0"


@cache
def _advice_table() -> dict[str, str]:
    data = resources.files("bouncewise.judge").joinpath("advice.toml").read_text(encoding="utf-8")
    return tomllib.loads(data)["advice"]


def advice_for(reason: str) -> str:
    """Return the advice sentence for a reason."""
    table = _advice_table()
    return table.get(reason, table["undefined"])
