"""The classifier's public functions: one message, many inputs, or a bare SMTP reply."""

from __future__ import annotations

import email.message
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from bouncewise.config import DEFAULT_LIMITS, Limits
from bouncewise.decode import RecipientFields, Report, decode_message
from bouncewise.judge import Evidence, Verdict, judge
from bouncewise.mail.message import Message, unreadable_cause
from bouncewise.mail.sources import Item, iter_items
from bouncewise.smtp import find_status

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
    holding one message (an `os.PathLike`, or a str that names an existing file). Raises
    `UnreadableInput` for an empty or non-mail input, OSError for a path that cannot be read,
    and TypeError for any other type.
    """
    if isinstance(message, os.PathLike) or (isinstance(message, str) and _looks_like_path(message)):
        path = os.fspath(message)
        with open(path, "rb") as stream:
            data = stream.read(limits.max_message_size + 1)
        source = source or path
    elif isinstance(message, email.message.Message):
        data = _message_bytes(message)
    elif isinstance(message, str):
        if "\n" not in message and ":" not in message and message.strip():
            # One line with no header field: most likely a path to a file that is not there.
            raise UnreadableInput(f"not a mail message, and no file is named {message[:200]!r}")
        # "surrogatepass" also keeps lone surrogates that did not come from undecodable bytes.
        data = message.encode("utf-8", "surrogatepass")
    elif isinstance(message, (bytes, bytearray, memoryview)):
        data = bytes(message)
    else:
        raise TypeError(f"cannot classify a {type(message).__name__}: pass bytes, str, "
                        f"an email.message.Message or a path")
    return classify_bytes(data, source, limits)


def _looks_like_path(text: str) -> bool:
    """Return True for a str that names an existing file rather than holding a message."""
    return "\n" not in text and len(text) < 4096 and os.path.isfile(text)


def _message_bytes(message: email.message.Message) -> bytes:
    try:
        return message.as_bytes()
    except UnicodeError:
        # The default compat32 policy cannot write 8-bit text as bytes, but it can as a str. Such
        # a message nearly always declares UTF-8 for its text, so the str is encoded as UTF-8.
        try:
            return message.as_string().encode("utf-8", "surrogateescape")
        except (ValueError, LookupError, UnicodeError, TypeError) as error:
            raise UnreadableInput(f"the email.message.Message cannot be serialised: {error}") from error
    except (ValueError, LookupError, TypeError) as error:
        raise UnreadableInput(f"the email.message.Message cannot be serialised: {error}") from error


def classify_bytes(data: bytes, source: str = "", limits: Limits = DEFAULT_LIMITS) -> list:
    """Classify one message given as bytes; raise `UnreadableInput` if it is no mail message."""
    from bouncewise.result import Result

    cause = unreadable_cause(data[: limits.max_message_size])
    if cause:
        raise UnreadableInput(cause)

    report = decode_message(Message(data, limits))
    if report is None:
        return []

    # A bounce listing thousands of recipients usually repeats a few failures; judge each once.
    verdicts: dict[Evidence, Verdict] = {}
    results = []
    for fields in report.recipients:
        evidence = _evidence(fields)
        verdict = verdicts.get(evidence)
        if verdict is None:
            verdict = verdicts[evidence] = judge(evidence, limits)
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
        diagnostic_type=fields.diagnostic_type,
        status_from_field=fields.status_from_field,
        reply_names_recipient=_names_recipient(fields),
        from_report=True,
    )


def _names_recipient(fields: RecipientFields) -> bool:
    """Return True if the diagnostic quotes the recipient's address in angle brackets."""
    if not fields.final_recipient:
        return False
    lowered = fields.diagnostic_code.lower()
    return any(f"<{address.lower()}>" in lowered
               for address in (fields.final_recipient, fields.original_recipient) if address)


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
        truncated=report.truncated,
    )


def _default_action(kind: str) -> str:
    return {"failure": "failed", "delay": "delayed", "delivered": "delivered"}.get(kind, "")


def classify_item(item: Item, limits: Limits = DEFAULT_LIMITS) -> list | Failure:
    """Classify one item of a batch, turning any error into a `Failure` with a one-line cause.

    Every exception is caught here, including a decoder's bug, so that one message cannot stop
    a batch. The cause names the exception, so that the input can be reported.
    """
    if item.error:
        return Failure(item.source, item.error)
    try:
        return classify_bytes(item.data, item.source, limits)
    except UnreadableInput as error:
        return Failure(item.source, str(error))
    except RecursionError:
        return Failure(item.source, "message nesting too deep to read")
    except MemoryError:
        return Failure(item.source, "not enough memory to read the message")
    except Exception as error:  # noqa: BLE001 - a bug in one decoder must not end the batch
        return Failure(item.source, f"internal error while classifying ({type(error).__name__}: "
                                    f"{_one_line(str(error))}); please report this input")


def _one_line(text: str, max_length: int = 200) -> str:
    return " ".join(text.split())[:max_length]


def iter_classify(paths: Iterable[str | os.PathLike] | str | os.PathLike,
                  limits: Limits = DEFAULT_LIMITS) -> Iterator:
    """Classify every message under `paths`, in order, yielding `Result`s and `Failure`s.

    `paths` is a list of paths, or a single path.
    """
    for item in iter_items(paths, limits):
        outcome = classify_item(item, limits)
        if isinstance(outcome, Failure):
            yield outcome
        else:
            yield from outcome


def explain(reply: str, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    """Classify a bare SMTP reply as it appears in a log, such as "550 5.7.1 ... spam".

    Codes are read from the first `limits.max_scan_text` characters of `reply`, and phrases
    are matched against the first `limits.max_phrase_text`.
    """
    text = reply[: limits.max_scan_text]
    verdict = judge(Evidence(diagnostic=text), limits)
    if not verdict.reply_code and not find_status(text):
        # A line without a reply code or a status code gives no class to derive a status from.
        verdict = replace(verdict, status="")
    return verdict
