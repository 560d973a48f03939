"""The ledger's database: recording bounces once, per-recipient state, and the notice queue.

Every message is recorded in one transaction with its events, the recipients' new state and
the notices it calls for. The unique message key makes a second copy of a bounce a no-op, also
when several ingesters share one PostgreSQL database: the second insert waits for the first
transaction and then finds the key taken. Recipient rows are locked while they change
(SELECT ... FOR UPDATE on PostgreSQL; SQLite has one writer at a time).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, insert, inspect, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bouncewise.ledger import policy
from bouncewise.ledger.config import LedgerConfig
from bouncewise.ledger.models import (LONG_TEXT, SHORT_TEXT, BounceEvent, BounceMessage, Notice,
                                      RecipientState)
from bouncewise.mail.message import normalize_newlines

__all__ = ["Ledger", "LedgerUnavailable", "Recorded", "EventInput", "MessageInput",
           "message_key"]

LOGGER = logging.getLogger("bouncewise.ledger")

# Key of the PostgreSQL advisory lock held while the schema is migrated, so that ingesters
# started together do not migrate at once. Any fixed number works; this one spells "bwled".
_MIGRATION_LOCK = 0x62776C6564

# Seconds SQLite waits for another process's write transaction before it gives up.
SQLITE_BUSY_TIMEOUT = 30


class LedgerUnavailable(Exception):
    """The database cannot be reached or used; intake must stop and leave mail where it is."""


@dataclass(frozen=True, slots=True)
class EventInput:
    """One recipient's outcome to record, from a classifier result (and a VERP token)."""

    recipient: str
    reason: str
    category: str
    hard_bounce: bool
    status: str = ""
    reply_code: str = ""
    diagnostic: str = ""
    remote_mta: str = ""
    sender: str = ""
    original_message_id: str = ""
    subject: str = ""
    feedback_type: str = ""
    advice: str = ""
    tag: str = ""
    occurred_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class MessageInput:
    """One message to record: its key, its events, and what the intake found out about it."""

    source: str
    key: str
    events: tuple[EventInput, ...] = ()
    # Why the message could not be read, or "".
    error: str = ""
    verp_recipient: str = ""
    verp_tag: str = ""


@dataclass(frozen=True, slots=True)
class Recorded:
    """Outcome of recording one message."""

    duplicate: bool
    decisions: tuple[tuple[str, str], ...] = ()
    notices: int = 0
    # Addresses this message made suppressed (not those suppressed before).
    suppressed: int = 0


def message_key(data: bytes) -> str:
    """Return the key that identifies a message whatever its line ends."""
    return hashlib.sha256(normalize_newlines(data)).hexdigest()


class Ledger:
    """A connection to the ledger's database, with its schema brought up to date."""

    def __init__(self, config: LedgerConfig, database: str | None = None,
                 create: bool = True) -> None:
        """Open the ledger at `database` (default: the configured one).

        With `create`, a missing schema is created and an old one migrated. Without it, as
        for commands that only read, a database without a ledger is an error, so that a
        mistyped URL does not leave an empty ledger behind.
        """
        self.config = config
        self.url = database or config.store.database
        where = f"database {_safe_url(self.url)}"
        if not create and self.url.startswith("sqlite:///") and not os.path.exists(
                self.url.removeprefix("sqlite:///")):
            raise LedgerUnavailable(f"{where}: no such file; run 'ledger ingest' first")
        try:
            self.engine = _engine(self.url)
            if create:
                upgrade(self.engine)
            elif not inspect(self.engine).has_table("recipients"):
                raise LedgerUnavailable(f"{where}: no ledger found; run 'ledger ingest' first")
        except SQLAlchemyError as error:
            raise LedgerUnavailable(f"{where}: {_cause(error)}") from error
        except (ImportError, ValueError) as error:
            # An unknown kind of database or a driver that is not installed.
            raise LedgerUnavailable(f"{where}: cannot be used: {_cause(error)}") from error
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session whose work is committed at the end, or rolled back on error."""
        try:
            with self._sessions.begin() as session:
                yield session
        except OperationalError as error:
            raise LedgerUnavailable(f"database {_safe_url(self.url)}: {_cause(error)}") from error

    # Recording.

    def record_batch(self, session: Session, messages: list[MessageInput],
                     received_at: datetime | None = None) -> list[Recorded]:
        """Record messages and their events in `session`, skipping any seen before.

        A batch takes five statements rather than several per message. They insert the
        messages and the new recipients, lock all recipients involved, and insert the events
        and the notices.
        """
        received_at = received_at or datetime.now(UTC)
        new_ids = self._insert_messages(session, messages, received_at)

        fresh = []
        for message in messages:
            # A key inserted by this batch counts once, for the first message that has it.
            message_id = new_ids.pop(message.key, None)
            if message_id is not None:
                fresh.append((message, message_id))
        states = self._locked_recipients(session, [
            (item.recipient.lower(), item.occurred_at or received_at)
            for message, _ in fresh for item in message.events])

        event_rows: list[dict] = []
        results: dict[int, Recorded] = {}
        for message, message_id in fresh:
            decisions = []
            newly = 0
            for item in message.events:
                row = self._apply(states[item.recipient.lower()], message_id, item, received_at)
                newly += row.pop("newly_suppressed")
                event_rows.append(row)
                decisions.append((item.recipient, row["decision"]))
            results[id(message)] = Recorded(duplicate=False, decisions=tuple(decisions),
                                            suppressed=newly)

        notices = self._insert_events_and_notices(session, event_rows, received_at)
        for message, message_id in fresh:
            queued = notices.get(message_id, 0)
            if queued:
                previous = results[id(message)]
                results[id(message)] = Recorded(False, previous.decisions, queued,
                                                previous.suppressed)
        return [results.get(id(message), Recorded(duplicate=True)) for message in messages]

    def _insert_messages(self, session: Session, messages: list[MessageInput],
                         received_at: datetime) -> dict[str, int | None]:
        """Insert the messages not seen before; return the new ids by key."""
        rows = {message.key: dict(message_key=message.key, source=message.source[:LONG_TEXT],
                                  received_at=received_at, error=message.error[:LONG_TEXT],
                                  verp_recipient=message.verp_recipient[:320],
                                  verp_tag=message.verp_tag[:SHORT_TEXT])
                for message in reversed(messages)}
        if not rows:
            return {}
        # Sorted keys: two ingesters that insert overlapping batches wait for each other in
        # the same order, and so cannot deadlock.
        statement = self._insert(BounceMessage).on_conflict_do_nothing(
            index_elements=["message_key"]).returning(BounceMessage.id, BounceMessage.message_key)
        inserted = session.connection().execute(statement, [rows[key] for key in sorted(rows)])
        return {key: message_id for message_id, key in inserted}

    def _locked_recipients(self, session: Session,
                           seen: list[tuple[str, datetime]]) -> dict[str, RecipientState]:
        """Return the recipients' rows, created if new, locked until the transaction ends."""
        if not seen:
            return {}
        first: dict[str, datetime] = {}
        for address, moment in seen:
            first[address] = min(first.get(address, moment), moment)
        session.connection().execute(
            self._insert(RecipientState).on_conflict_do_nothing(index_elements=["address"]),
            [dict(address=address, first_seen=moment, last_seen=moment, counts={},
                  bounce_score=0.0, suppressed=False, last_reason="", last_category="",
                  last_reply="", suppressed_reason="")
             for address, moment in sorted(first.items())])
        # Locked in address order, for the same reason as the message keys.
        found = session.execute(select(RecipientState).where(
            RecipientState.address.in_(sorted(first))).order_by(RecipientState.address)
            .with_for_update()).scalars()
        return {state.address: state for state in found}

    def _apply(self, state: RecipientState, message_id: int, item: EventInput,
               received_at: datetime) -> dict:
        """Apply the policy to one event, update the recipient, and return the event's row."""
        occurred_at = item.occurred_at or received_at
        counts = dict(state.counts or {})
        counts[item.category] = counts.get(item.category, 0) + 1
        outcome = policy.apply(item.category, item.hard_bounce, occurred_at, counts,
                               dict(state.score_days or {}), self.config.policy)

        state.counts = counts
        state.first_seen = min(_aware(state.first_seen) or occurred_at, occurred_at)
        if occurred_at >= (_aware(state.last_seen) or occurred_at):
            # The latest event describes the address now; an older one taken in late does not.
            state.last_seen = occurred_at
            state.last_reason = item.reason
            state.last_category = item.category
            state.last_reply = item.diagnostic[:LONG_TEXT]
        if item.tag:
            state.last_tag = item.tag[:SHORT_TEXT]
        state.score_days = outcome.score_days
        state.bounce_score = outcome.bounce_score
        state.score_started = _day_start(min(outcome.score_days, default=None))
        state.score_updated = _day_start(max(outcome.score_days, default=None))
        newly = outcome.suppress and not state.suppressed
        if newly:
            state.suppressed = True
            state.suppressed_reason = outcome.decision[:SHORT_TEXT]
            state.suppressed_at = occurred_at
            LOGGER.info("suppressed: address=<%s> reason=%s why=\"%s\"", state.address,
                        item.reason, outcome.decision)

        return dict(
            message_id=message_id, recipient=state.address, reason=item.reason,
            category=item.category, hard_bounce=item.hard_bounce, status=item.status[:20],
            reply_code=item.reply_code[:3], diagnostic=item.diagnostic[:LONG_TEXT],
            remote_mta=item.remote_mta[:SHORT_TEXT], sender=item.sender[:320],
            original_message_id=item.original_message_id[:SHORT_TEXT],
            subject=item.subject[:SHORT_TEXT], feedback_type=item.feedback_type[:40],
            advice=item.advice[:LONG_TEXT], tag=item.tag[:SHORT_TEXT], occurred_at=occurred_at,
            decision=outcome.decision[:SHORT_TEXT], newly_suppressed=newly)

    def _insert_events_and_notices(self, session: Session, rows: list[dict],
                                   now: datetime) -> dict[int, int]:
        """Insert the events and the notices they call for; return notices sent per message."""
        if not rows:
            return {}
        connection = session.connection()
        wanted = [(index, channel, target) for index, row in enumerate(rows)
                  for channel, target in self._channels(row)]
        if not wanted:
            connection.execute(insert(BounceEvent), rows)
            return {}

        ids = [event_id for (event_id,) in connection.execute(
            insert(BounceEvent).returning(BounceEvent.id, sort_by_parameter_order=True), rows)]
        recent = self._recently_notified(session, {(channel, target)
                                                   for _, channel, target in wanted}, now)
        notices = []
        sent: dict[int, int] = {}
        for index, channel, target in wanted:
            row = rows[index]
            state = "rate-limited" if (channel, target) in recent else "pending"
            if state == "rate-limited":
                LOGGER.info("notice: channel=%s target=<%s> state=rate-limited: another notice "
                            "went out in the last %g s", channel, target,
                            self.config.notify.interval)
            recent.add((channel, target))
            notices.append(dict(event_id=ids[index], channel=channel, target=target[:320],
                                payload=notice_payload(row), state=state, attempts=0,
                                next_attempt_at=now, last_error="", created_at=now))
            if state == "pending":
                sent[row["message_id"]] = sent.get(row["message_id"], 0) + 1
        connection.execute(insert(Notice), notices)
        return sent

    def _channels(self, row: dict) -> list[tuple[str, str]]:
        """Return the (channel, target) pairs an event's notices go to."""
        if row["category"] not in self.config.notify.categories:
            return []
        channels = []
        if self.config.mail.relay and _notifiable(row["sender"]) and not self._is_return_path(
                row["sender"]):
            channels.append(("mail", row["sender"].lower()))
        if self.config.webhook.url and (row["tag"] or row["sender"]):
            channels.append(("webhook", row["tag"] or row["sender"].lower()))
        return channels

    def _is_return_path(self, address: str) -> bool:
        """Return True for a VERP return path of ours: mail to it would come back as a bounce."""
        settings = self.config.verp
        if not settings.domain:
            return False
        local, _, domain = address.lower().rpartition("@")
        return domain == settings.domain.lower() or local.startswith(f"{settings.prefix}+")

    def _recently_notified(self, session: Session, pairs: set[tuple[str, str]],
                           now: datetime) -> set[tuple[str, str]]:
        """Return the (channel, target) pairs that had a notice within the interval."""
        since = now - timedelta(seconds=self.config.notify.interval)
        targets = sorted({target for _, target in pairs})
        found = session.execute(select(Notice.channel, Notice.target).where(
            Notice.target.in_(targets), Notice.state.in_(("pending", "sent")),
            Notice.created_at > since).distinct())
        return {(channel, target) for channel, target in found if (channel, target) in pairs}

    def _insert(self, model):
        """Return the dialect's INSERT, which has ON CONFLICT DO NOTHING."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        return dialect.insert(model)

    # Queries.

    def status(self, address: str) -> tuple[RecipientState | None, list[BounceEvent]]:
        """Return a recipient's state and its events, oldest first."""
        address = address.lower()
        with self.transaction() as session:
            state = session.get(RecipientState, address)
            events = list(session.execute(select(BounceEvent).where(
                BounceEvent.recipient == address).order_by(BounceEvent.occurred_at,
                                                            BounceEvent.id)).scalars())
        return state, events

    def is_suppressed(self, address: str) -> bool:
        """Return True if mail to `address` should stop."""
        with self.transaction() as session:
            state = session.get(RecipientState, address.lower())
            return state is not None and state.suppressed

    def suppressed(self) -> list[RecipientState]:
        """Return the suppressed recipients, by address."""
        with self.transaction() as session:
            return list(session.execute(select(RecipientState).where(
                RecipientState.suppressed.is_(True)).order_by(RecipientState.address)).scalars())

    def unsuppress(self, address: str) -> bool:
        """Lift a suppression and restart the soft-bounce score; return False if there was none."""
        with self.transaction() as session:
            state = session.get(RecipientState, address.lower(), with_for_update=True)
            if state is None or not state.suppressed:
                return False
            state.suppressed = False
            state.suppressed_reason = ""
            state.suppressed_at = None
            state.bounce_score = 0.0
            state.score_started = None
            state.score_updated = None
            state.counts = {}
        LOGGER.info("unsuppressed: address=<%s>", address.lower())
        return True


def notice_payload(row: dict) -> dict:
    """Return the facts of a notice, from an event's row, as JSON types."""
    occurred_at = _aware(row["occurred_at"])
    assert occurred_at is not None
    return {"recipient": row["recipient"], "sender": row["sender"], "tag": row["tag"],
            "reason": row["reason"], "category": row["category"], "status": row["status"],
            "reply": row["diagnostic"], "remote_mta": row["remote_mta"],
            "advice": row["advice"], "subject": row["subject"],
            "original_message_id": row["original_message_id"],
            "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def upgrade(engine: Engine) -> None:
    """Create or migrate the schema to the newest revision."""
    config = Config()
    config.set_main_option("script_location",
                           str(resources.files("bouncewise.ledger").joinpath("migrations")))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": _MIGRATION_LOCK})
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(connection, _record) -> None:
            # Let SQLAlchemy issue BEGIN, and take the write lock at its start, so that two
            # processes never both read and then fail to upgrade to writing.
            connection.isolation_level = None
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA foreign_keys=ON")

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True)


def _day_start(day: str | None) -> datetime | None:
    return None if day is None else datetime.fromisoformat(day).replace(tzinfo=UTC)


def _aware(moment: datetime | None) -> datetime | None:
    """Return `moment` with UTC attached where the database returned it without a zone."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def _notifiable(sender: str) -> bool:
    """Return True for an original sender that can be notified: not empty, not a mail system."""
    local = sender.lower().partition("@")[0]
    return bool(sender) and "@" in sender and local not in ("mailer-daemon", "postmaster", "")


def _safe_url(url: str) -> str:
    """Return the URL without a password."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if at and ":" in credentials:
        return f"{scheme}{separator}{credentials.split(':', 1)[0]}:***@{host}"
    return url


def _cause(error: BaseException) -> str:
    original = getattr(error, "orig", None) or error
    return (str(original).strip().splitlines() or [type(original).__name__])[0][:300]
