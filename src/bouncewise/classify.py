"""The classifier's public functions: one message, many inputs, or a bare SMTP reply."""

from __future__ import annotations

import email.message
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.decode import RecipientFields, Report, decode_message
from bouncewise.judge import Evidence, Verdict, judge
from bouncewise.mail.message import Message
from bouncewise.mail.sources import Item, iter_items

MessageInput = bytes | str | email.message.Message | os.PathLike


class UnreadableInput(ValueError):
    """An input that is not a mail message at all; the message names the cause."""


@dataclass(frozen=True, slots=True)
class Failure:
    """An input of a batch that could not be read, with a one-line cause."""

    source: str
    error: str


def classify(message: MessageInput, source: str = "", limits: Limits = DEFAULT_LIMITS) -> list:
    """Classify one message; return one `Result` per recipient, or [] for a message that is no report.

    `message` may be the raw bytes, a str, an `email.message.Message`, or a path to a file
    holding one message. Raises `UnreadableInput` for an empty or non-mail input.
    """
    if isinstance(message, os.PathLike) or (isinstance(message, str) and _looks_like_path(message)):
        path = os.fspath(message)
        with open(path, "rb") as stream:
            data = stream.read(limits.max_message_size + 1)
        source = source or path
    elif isinstance(message, email.message.Message):
        data = message.as_bytes()
    elif isinstance(message, str):
        data = message.encode("utf-8", "surrogateescape")
    else:
        data = bytes(message)

    if not data.strip():
        raise UnreadableInput("empty input")
    return classify_bytes(data, source, limits)


def _looks_like_path(text: str) -> bool:
    return "\n" not in text and len(text) < 4096 and os.path.isfile(text)


def classify_bytes(data: bytes, source: str = "", limits: Limits = DEFAULT_LIMITS) -> list:
    """Classify one message given as bytes."""
    from bouncewise.result import Result

    report = decode_message(Message(data, limits))
    if report is None:
        return []

    results = []
    for fields in report.recipients:
        verdict = judge(_evidence(fields))
        results.append(_result(Result, source, report, fields, verdict))
    return results


def _evidence(fields: RecipientFields) -> Evidence:
    return Evidence(
        status=fields.status,
        reply_code=fields.reply_code,
        diagnostic=fields.diagnostic_code,
        smtp_command=fields.smtp_command,
        action=fields.action,
        kind=fields.kind,
    )


def _result(result_type, source: str, report: Report, fields: RecipientFields, verdict: Verdict):
    return result_type(
        source=source,
        recipient=fields.final_recipient,
        status=verdict.status,
        reply_code=verdict.reply_code,
        reason=verdict.reason,
        category=verdict.category,
        hard_bounce=verdict.hard_bounce,
        action=fields.action or _default_action(fields.kind),
        diagnostic=fields.diagnostic_code,
        diagnostic_type=fields.diagnostic_type,
        remote_mta=fields.remote_mta,
        reporting_mta=fields.reporting_mta,
        smtp_command=verdict.smtp_command,
        sender=report.sender,
        original_message_id=report.original_message_id,
        subject=report.subject,
        timestamp=report.timestamp,
        feedback_type=fields.feedback_type,
        decoded_by=report.decoded_by,
        advice=verdict.advice,
    )


def _default_action(kind: str) -> str:
    return {"failure": "failed", "delay": "delayed", "delivered": "delivered"}.get(kind, "")


def classify_item(item: Item, limits: Limits = DEFAULT_LIMITS) -> list | Failure:
    """Classify one item of a batch, turning any error into a `Failure` with a one-line cause."""
    if item.error:
        return Failure(item.source, item.error)
    try:
        return classify_bytes(item.data, item.source, limits)
    except RecursionError:
        return Failure(item.source, "message nesting too deep to read")
    except (ValueError, LookupError, UnicodeError, MemoryError) as error:
        return Failure(item.source, f"cannot be decoded: {type(error).__name__}: {error}")


def iter_classify(paths: Iterable[str], limits: Limits = DEFAULT_LIMITS) -> Iterator:
    """Classify every message under `paths`, in order, yielding `Result`s and `Failure`s."""
    for item in iter_items(paths, limits):
        outcome = classify_item(item, limits)
        if isinstance(outcome, Failure):
            yield outcome
        else:
            yield from outcome


def explain(reply: str) -> Verdict:
    """Classify a bare SMTP reply as it appears in a log, such as "550 5.7.1 ... spam"."""
    return judge(Evidence(diagnostic=reply))
