"""The judge: turn the fields a decoder read into a reason, a category, hard or soft, and advice.

It reads only a plain `Evidence` record, never a raw message, so the same rules serve bounces,
bare reply lines from logs, and the gate's check of its own reply texts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.judge.categories import category_of, is_hard_bounce
from bouncewise.judge.codes import DERIVED_STATUS, FALLBACK_STATUS_REASONS, STATUS_REASONS
from bouncewise.judge.reasons import (DEFINITE, SPECIFIC, WEAK, normalize_text,
                                      reason_from_provider_code, reason_from_text)
from bouncewise.smtp import find_reply_code, find_smtp_command, find_status, status_class

__all__ = ["Evidence", "Verdict", "judge", "advice_for"]

# Kinds of report whose reason follows from the kind alone.
_KIND_REASONS = {"feedback": "feedback", "auto-reply": "vacation", "delivered": "delivered"}

# Status details precise enough to outweigh the reply text, which for these codes usually
# paraphrases the same cause in looser words ("message too large for this recipient" is 5.2.3).
_CODE_OVER_TEXT = frozenset(("2.2", "2.3", "3.4", "7.20", "7.21", "7.22", "7.23", "7.24", "7.25",
                             "7.26", "7.27"))

# Reasons whose specific phrases outweigh even a DSN's specific Status field, such as a
# blocklist named beside 5.1.1. Spam and virus refusals win even with a weak phrase (a bare
# "spam"), so that they are never reported as a dead address whatever code came with them.
_EVIDENCE_OVER_ANY_CODE = frozenset(("spamdetected", "virusdetected"))
_TEXT_OVER_ANY_CODE = frozenset(("spamdetected", "virusdetected", "blocked", "speeding",
                                 "toomanyconn"))

# Commands before MAIL FROM, and reasons that can only concern a named recipient.
_SESSION_COMMANDS = frozenset(("CONN", "EHLO", "HELO"))
_RECIPIENT_REASONS = frozenset(("userunknown", "hostunknown", "filtered", "suspend", "mailboxfull",
                                "hasmoved", "notaccept"))

# Reasons whose words a local delivery program also uses for its own failures.
_LOCAL_PROGRAM_REASONS = frozenset(("userunknown", "systemerror"))

# Reasons read from the text that mean "the sender was refused" when the refusal came at MAIL FROM.
_MAIL_STAGE_REWRITES = frozenset(("userunknown", "securityerror", "filtered"))

# Status subjects (the middle digit) that name a class of cause when nothing else does:
# X.6.X is a media (content) error and X.7.X a security or policy refusal (RFC 3463).
_SUBJECT_REASONS = {"6": "contenterror", "7": "securityerror"}

# Reasons that a temporary (4xx) failure turns into. A DNS reply of "no such domain" may change,
# so while it is temporary it is a network error.
_TEMPORARY_REASONS = {"hostunknown": "networkerror"}

# The reason when no phrase and no code decides, by the SMTP command the error followed.
_COMMAND_REASONS = {"CONN": "blocked", "EHLO": "blocked", "HELO": "blocked", "MAIL": "rejected",
                    "RCPT": "userunknown",
                    "STARTTLS": "failedstarttls", "AUTH": "securityerror"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """Input of the judge: the fields of one recipient's failure, as plain strings."""

    status: str = ""
    reply_code: str = ""
    diagnostic: str = ""
    smtp_command: str = ""
    action: str = ""
    kind: str = "failure"
    diagnostic_type: str = ""
    # True where the status is a DSN's Status field, the reporting MTA's own classification.
    status_from_field: bool = False
    # True where the reply quotes the recipient's address, as servers do in reply to RCPT TO.
    reply_names_recipient: bool = False
    # True for fields read from a bounce, False for a bare reply line such as `explain` reads.
    from_report: bool = False


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


def judge(evidence: Evidence, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Decide the reason, category and hard-bounce flag for one recipient's failure.

    Phrases are matched against the first `limits.max_phrase_text` characters of the diagnostic.
    """
    status, from_field = _status(evidence)
    reply_code = evidence.reply_code or find_reply_code(evidence.diagnostic)
    command = evidence.smtp_command or find_smtp_command(evidence.diagnostic)

    reason = _reason(evidence, status, from_field, command, limits.max_phrase_text)

    if not status:
        status = _derived_status(reason, reply_code, evidence.kind)
    # A final failure notice after a server kept answering 4xx is as permanent as a 5xx: the
    # sending server retried until it gave up. A bare 4xx reply line or a delay notice is not.
    final_notice = evidence.from_report and evidence.kind == "failure" and not _is_delay(evidence)
    permanent_code = (status_class(status) or status_class(reply_code)) == "5"
    return Verdict(
        reason=reason,
        category=category_of(reason),
        hard_bounce=is_hard_bounce(reason, permanent_code, final_notice),
        status=status,
        reply_code=reply_code,
        smtp_command=command,
        advice=_delay_advice() if _is_delay(evidence) else advice_for(reason),
    )


def _status(evidence: Evidence) -> tuple[str, bool]:
    """Return the status code to judge by, and whether it is a DSN's Status field.

    The remote server's own code in the reply text wins over a Status field that differs from
    it: the reporting MTA often fills the field with its own generic code (4.4.7 for any delay).
    """
    in_text = find_status(evidence.diagnostic)
    generic = in_text.endswith(".0.0")
    if evidence.status and (not in_text or in_text == evidence.status or in_text[0] == "2" or generic):
        return evidence.status, evidence.status_from_field
    return in_text or evidence.status, False


@dataclass(frozen=True, slots=True)
class _TextReading:
    """The reason read from the reply text, corrected by the SMTP stage of the refusal."""

    reason: str
    strength: str
    command: str

    @property
    def weak(self) -> bool:
        return self.strength == WEAK


def _reason(evidence: Evidence, status: str, from_field: bool, command: str,
            max_phrase_text: int) -> str:
    if evidence.kind in _KIND_REASONS:
        return _KIND_REASONS[evidence.kind]
    if status_class(status) == "2" or (not status and status_class(find_reply_code(
            evidence.diagnostic)) == "2"):
        # A success reply, as a log line of a delivered message carries.
        return "delivered"

    detail = status.partition(".")[2]
    reading = _read_text(evidence, detail, command, max_phrase_text)
    reason = _combine(evidence, reading, detail, from_field)
    if not reason:
        reason = _fallback_reason(evidence, status, reading.command)

    temporary = (status_class(status) or status_class(evidence.reply_code)
                 or status_class(find_reply_code(evidence.diagnostic))) == "4"
    if temporary:
        reason = _TEMPORARY_REASONS.get(reason, reason)
    return reason


def _read_text(evidence: Evidence, detail: str, command: str, max_phrase_text: int) -> _TextReading:
    """Read a reason from the reply text, then correct it by the SMTP stage of the refusal."""
    text = normalize_text(evidence.diagnostic, max_phrase_text)
    provider_reason = reason_from_provider_code(text)
    if provider_reason:
        text_reason, strength = provider_reason, DEFINITE
    else:
        text_reason, strength = reason_from_text(text)

    if command in ("", "MAIL") and evidence.reply_names_recipient:
        # A reply that quotes the recipient answers RCPT TO, whatever stage the notice names.
        command = "RCPT"

    if (text_reason == "userunknown" and strength != DEFINITE and command != "RCPT"
            and not detail.startswith("1.") and (command or evidence.from_report)):
        # Filters also reply "user unknown", after DATA or at a stage the bounce leaves unsaid.
        # So in a bounce the words count as such only in reply to RCPT TO or with an X.1.X
        # status. A bare reply line never names its stage, so there the words keep their reason.
        text_reason = "filtered"
    if command == "MAIL" and text_reason != "blocked" and (
            strength == WEAK or text_reason in _MAIL_STAGE_REWRITES):
        # Refused at MAIL FROM, before any recipient was named: it is the sender that was refused.
        text_reason, strength = "rejected", SPECIFIC
    if command in _SESSION_COMMANDS and text_reason in _RECIPIENT_REASONS:
        # Refused before any recipient was named: the words cannot be about the recipient, so
        # it is the connecting client that was refused.
        text_reason, strength = "blocked", SPECIFIC
    return _TextReading(text_reason, strength, command)


def _combine(evidence: Evidence, reading: _TextReading, detail: str, from_field: bool) -> str:
    """Weigh the text's reason against the status code's; return "" if neither names one."""
    code_reason = STATUS_REASONS.get(detail, "")

    if _is_local_program_error(evidence) and (reading.weak
                                              or reading.reason in _LOCAL_PROGRAM_REASONS):
        # A local delivery program's own words ("No such user", "Permission denied") describe
        # its failure, not the address.
        return "mailererror"
    if code_reason == "filtered" and reading.reason and reading.reason != "userunknown":
        # Servers send X.2.0 and X.2.1 for many mailbox states, and the text names the state.
        return reading.reason
    code_decides = from_field or detail in _CODE_OVER_TEXT
    if (code_reason and code_decides and reading.strength != DEFINITE
            and not _outweighs_code(reading.reason, reading.weak)):
        return code_reason
    return reading.reason or code_reason


def _outweighs_code(text_reason: str, weak: bool) -> bool:
    """Return True if the text's reason wins over any status code that came with it."""
    if text_reason in _EVIDENCE_OVER_ANY_CODE:
        return True
    return text_reason in _TEXT_OVER_ANY_CODE and not weak


def _is_local_program_error(evidence: Evidence) -> bool:
    """Return True for a diagnostic written by a local delivery program (type X-UNIX)."""
    if evidence.diagnostic_type.upper() != "X-UNIX":
        return False
    return any(character.isalpha() for character in evidence.diagnostic[:200])


def _fallback_reason(evidence: Evidence, status: str, command: str) -> str:
    """Return the reason when neither a phrase nor a specific status code decides."""
    if evidence.kind == "delay" or evidence.action == "delayed":
        return "expired"
    if command in _SESSION_COMMANDS and status_class(status) != "4":
        # Refused before any sender or recipient was named: only the client can be the cause.
        # A temporary refusal there, retried until the sender gave up, falls to the code below.
        return "blocked"
    detail = status.partition(".")[2]
    if detail in FALLBACK_STATUS_REASONS:
        return FALLBACK_STATUS_REASONS[detail]
    subject = detail.partition(".")[0]
    if subject in _SUBJECT_REASONS:
        return _SUBJECT_REASONS[subject]
    if evidence.diagnostic_type.upper() == "X-UNIX":
        return "mailererror"
    if command in _COMMAND_REASONS and (command != "RCPT" or status_class(status) == "5"):
        return _COMMAND_REASONS[command]
    # A temporary failure that names no cause is most often trouble at the receiving system.
    return "systemerror" if status_class(status) == "4" else "undefined"


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


def _is_delay(evidence: Evidence) -> bool:
    return evidence.kind == "delay" or evidence.action == "delayed"


def _delay_advice() -> str:
    """Return the advice for a delay notice, whose message is still being retried."""
    return _advice_table()["delayed"]


def advice_for(reason: str) -> str:
    """Return the advice sentence for a reason."""
    table = _advice_table()
    return table.get(reason, table["undefined"])
