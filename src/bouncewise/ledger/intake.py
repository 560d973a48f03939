"""Taking bounces into the ledger: classify each message, attribute it, record it in batches.

Where the address a bounce was sent to carries a valid VERP token, the token names the
recipient. Otherwise the classifier's recipient is used. Messages are
recorded in transactions of `batch_size`, and a Maildir message is marked seen only after its
transaction has been committed, so a failing database leaves every unrecorded message in place.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from bouncewise.classify import Failure, classify_item, explain
from bouncewise.config import DEFAULT_LIMITS
from bouncewise.ledger import verp
from bouncewise.ledger.config import LedgerConfig
from bouncewise.ledger.store import EventInput, Ledger, MessageInput, Recorded, message_key
from bouncewise.mail.headers import addresses, parse_date_utc, parse_header_block
from bouncewise.decode.plain import cut_original, notice_body, squeeze
from bouncewise.mail.message import Message, normalize_newlines, split_head
from bouncewise.mail.sources import Item, iter_items

__all__ = ["Intake", "IntakeStats", "maildir_pending", "mark_seen", "NOTICE_HEADER"]

# Header field that marks the ledger's own notices (lower case, as the header parser keys it).
NOTICE_HEADER = "x-bouncewise-notice"

LOGGER = logging.getLogger("bouncewise.ledger")

# Senders and subject words of failure notices, for a notice that names no recipient.
_MAIL_SYSTEM_SENDERS = ("mailer-daemon", "postmaster", "mail delivery")
_FAILURE_SUBJECT_WORDS = ("undeliver", "failure", "failed", "returned", "not delivered",
                          "delivery status")

# Header fields that name the address a message was delivered to, most reliable first. The
# delivering MTA writes the first three; To is the bounce's own header.
_ENVELOPE_FIELDS = ("x-original-to", "delivered-to", "envelope-to", "x-envelope-to", "to")


@dataclass
class IntakeStats:
    """Counts of one intake run."""

    messages: int = 0
    duplicates: int = 0
    unreadable: int = 0
    events: int = 0
    suppressed: int = 0
    notices: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self) -> str:
        seconds = time.monotonic() - self.started
        return (f"ingest: messages={self.messages} duplicates={self.duplicates} "
                f"unreadable={self.unreadable} events={self.events} "
                f"suppressed={self.suppressed} notices={self.notices} "
                f"seconds={seconds:.1f}")


class Intake:
    """Classifies messages and records them in the ledger."""

    def __init__(self, ledger: Ledger, config: LedgerConfig) -> None:
        self.ledger = ledger
        self.config = config
        self.limits = replace(DEFAULT_LIMITS, max_message_size=config.store.max_message_size)
        self.stats = IntakeStats()

    def ingest_paths(self, paths: Iterable[str], envelope_to: str = "") -> IntakeStats:
        """Record every message under `paths` (files, mbox files, folders, "-" for stdin)."""
        self.ingest_items(iter_items(list(paths), self.limits), envelope_to)
        return self.stats

    def ingest_items(self, items: Iterable[Item], envelope_to: str = "",
                     committed: Callable[[list[Item]], None] | None = None) -> None:
        """Record `items` in batches; call `committed(batch)` after each batch is committed."""
        batch: list[Item] = []
        for item in items:
            batch.append(item)
            if len(batch) >= self.config.store.batch_size:
                self._record_batch(batch, envelope_to)
                if committed:
                    committed(batch)
                batch = []
        if batch:
            self._record_batch(batch, envelope_to)
            if committed:
                committed(batch)

    def _record_batch(self, batch: list[Item], envelope_to: str) -> None:
        messages = [self._prepare(item, envelope_to) for item in batch]
        with self.ledger.transaction() as session:
            outcomes = self.ledger.record_batch(session, messages)
        for message, recorded in zip(messages, outcomes):
            self._count(recorded, message)

    def _prepare(self, item: Item, envelope_to: str) -> MessageInput:
        """Classify one item and attribute it; return what is to be recorded."""
        key = message_key(item.data or item.source.encode("utf-8", "replace"))
        # Read once here; the notice check, the VERP address and the date all come from it.
        fields = _header_fields(item.data, self.limits) if item.data else {}
        if fields.get(NOTICE_HEADER):
            # A notice of our own that came back, such as one sent to a return path that
            # leads here: recording it as a bounce would invent an event.
            LOGGER.info("ingest: %s: a bouncewise notice, not a bounce; recorded without events",
                        item.source)
            return MessageInput(item.source, key)
        outcome = classify_item(item, self.limits)
        if isinstance(outcome, Failure):
            LOGGER.info("ingest: %s: unreadable: %s", item.source, outcome.error)
            return MessageInput(item.source, key, error=outcome.error or "unreadable")

        token = self._verp_token(item.source, fields, envelope_to)
        reported_at = _reported_at(fields)
        events = [_event(result, token, reported_at) for result in outcome]
        if token is not None and not events:
            # A bounce that names no recipient the classifier could find: the token names
            # the recipient, and the notice text the reason.
            unnamed = _unnamed_failure(item.data, token, self.limits, reported_at)
            if unnamed is None:
                LOGGER.info("ingest: %s: VERP token for <%s> but no failure notice",
                            item.source, token.recipient)
            else:
                events = [unnamed]
        return MessageInput(item.source, key, tuple(events),
                            verp_recipient=token.recipient if token else "",
                            verp_tag=token.tag if token else "")

    def _verp_token(self, source: str, fields: dict[str, list[str]],
                    envelope_to: str) -> verp.VerpToken | None:
        settings = self.config.verp
        if not settings.secret:
            return None
        candidates = [envelope_to] if envelope_to else _envelope_addresses(fields)
        address = verp.find_token(candidates, settings.prefix)
        if not address:
            return None
        try:
            return verp.decode(address, [settings.secret, *settings.old_secrets],
                               settings.prefix)
        except verp.VerpError as error:
            # A forged or damaged token: the bounce is still recorded, by its own contents.
            LOGGER.warning("verp: %s: token rejected: %s", source, error)
            return None

    def _count(self, recorded: Recorded, message: MessageInput) -> None:
        if recorded.duplicate:
            self.stats.duplicates += 1
            return
        self.stats.messages += 1
        self.stats.unreadable += bool(message.error)
        self.stats.events += len(message.events)
        self.stats.notices += recorded.notices
        self.stats.suppressed += recorded.suppressed


def _event(result, token: verp.VerpToken | None, reported_at: datetime | None) -> EventInput:
    """Turn a classifier result into an event; a VERP token names the recipient and tag."""
    recipient = result.recipient
    if token is not None and (not recipient or _report_kind(result)):
        recipient = token.recipient
    elif token is not None and recipient.lower() != token.recipient.lower():
        # The bounce names another address than the one the mail was sent to, because of a
        # forward or an alias. The token names the address the application sent to.
        LOGGER.info("verp: bounce names <%s>, token names <%s>; using the token",
                    recipient, token.recipient)
        recipient = token.recipient
    return EventInput(
        recipient=recipient, reason=result.reason, category=result.category,
        hard_bounce=result.hard_bounce, status=result.status, reply_code=result.reply_code,
        diagnostic=result.diagnostic, remote_mta=result.remote_mta, sender=result.sender,
        original_message_id=result.original_message_id, subject=result.subject,
        feedback_type=result.feedback_type, advice=result.advice,
        tag=token.tag if token else "", occurred_at=reported_at)


def _unnamed_failure(data: bytes, token: verp.VerpToken, limits,
                     reported_at: datetime | None) -> EventInput | None:
    """Return the event of a failure notice that names no recipient, judged by its text."""
    message = Message(data, limits)
    sender = message.header("from").lower()
    subject = message.header("subject").lower()
    from_mail_system = any(name in sender for name in _MAIL_SYSTEM_SENDERS)
    if not (from_mail_system or any(word in subject for word in _FAILURE_SUBJECT_WORDS)):
        return None

    text = squeeze(cut_original(notice_body(message, limits.max_scan_text)))
    verdict = explain(text, limits)
    if verdict.category in ("unknown", "delivered"):
        return None
    return EventInput(recipient=token.recipient, reason=verdict.reason,
                      category=verdict.category, hard_bounce=verdict.hard_bounce,
                      status=verdict.status, reply_code=verdict.reply_code, diagnostic=text,
                      advice=verdict.advice, tag=token.tag, occurred_at=reported_at)


def _report_kind(result) -> bool:
    return result.category in ("complaint", "auto-reply", "delivered")


def _reported_at(fields: dict[str, list[str]]) -> datetime | None:
    """Return when the bounce was written, from its own Date field, or None.

    That is when the failure was reported. The returned message's date may be days older
    (retries), and the time of intake days later (a backlog). A date more than a day ahead is
    a wrong clock, and is not used.
    """
    text = parse_date_utc(fields.get("date", [""])[0])
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment > datetime.now(UTC) + timedelta(days=1):
        return None
    return moment


def _header_fields(data: bytes, limits) -> dict[str, list[str]]:
    head, _ = split_head(normalize_newlines(data[: limits.max_header_size * 2]), limits)
    return parse_header_block(head, limits)


def _envelope_addresses(fields: dict[str, list[str]]) -> list[str]:
    """Return the addresses the message was delivered to by its header, most reliable first."""
    found = []
    for name in _ENVELOPE_FIELDS:
        for value in fields.get(name, []):
            found.extend(addresses(value))
    return found


def maildir_pending(path: str) -> Iterator[str]:
    """Yield the files of a Maildir not yet marked seen: all of new/, and cur/ without S."""
    for sub in ("new", "cur"):
        folder = os.path.join(path, sub)
        try:
            names = sorted(os.listdir(folder))
        except FileNotFoundError:
            continue
        for name in names:
            if name.startswith("."):
                continue
            flags = name.partition(":2,")[2]
            if sub == "cur" and "S" in flags:
                continue
            yield os.path.join(folder, name)


def mark_seen(file_path: str) -> None:
    """Move a Maildir message to cur/ with the S (seen) flag, as a mail reader does."""
    folder, name = os.path.split(file_path)
    maildir = os.path.dirname(folder)
    base, _, flags = name.partition(":2,")
    if "S" in flags:
        return
    new_name = f"{base}:2,{''.join(sorted(flags + 'S'))}"
    os.rename(file_path, os.path.join(maildir, "cur", new_name))
