"""The ledger's tables: bounce messages, their per-recipient events, recipient state, notices.

The schema is created and changed only by the Alembic migrations in `migrations/versions`;
these classes describe it for queries.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, String,
                        Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = ["Base", "BounceMessage", "BounceEvent", "RecipientState", "Notice"]

# Lengths of text columns. Addresses are at most 254 characters by RFC 5321; diagnostics and
# errors are cut to these before they are stored.
ADDRESS_LENGTH = 320
SHORT_TEXT = 200
LONG_TEXT = 2000


class Base(DeclarativeBase):
    pass


class BounceMessage(Base):
    """One message taken in: a bounce, another report, or an input that could not be read."""

    __tablename__ = "bounce_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # SHA-256 of the message with its line ends made uniform: the same bounce read twice, from
    # any source, has the same key, and the unique index lets only one copy in.
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(LONG_TEXT))
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Why the message could not be read, or "" when it was read.
    error: Mapped[str] = mapped_column(String(LONG_TEXT), default="")
    # The recipient and application tag from a valid VERP token, where the bounce had one.
    verp_recipient: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), default="")
    verp_tag: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")


class BounceEvent(Base):
    """One recipient's outcome in one message, as the classifier read it."""

    __tablename__ = "bounce_events"
    __table_args__ = (UniqueConstraint("message_id", "recipient"),
                      Index("ix_bounce_events_recipient", "recipient"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("bounce_messages.id", ondelete="CASCADE"))
    recipient: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    reason: Mapped[str] = mapped_column(String(40))
    category: Mapped[str] = mapped_column(String(40))
    hard_bounce: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(20), default="")
    reply_code: Mapped[str] = mapped_column(String(3), default="")
    diagnostic: Mapped[str] = mapped_column(String(LONG_TEXT), default="")
    remote_mta: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    sender: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), default="")
    original_message_id: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    subject: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    feedback_type: Mapped[str] = mapped_column(String(40), default="")
    advice: Mapped[str] = mapped_column(String(LONG_TEXT), default="")
    tag: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    # When the failure happened, where the bounce gives it; else when the bounce was taken in.
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The decision taken on this event, in words ("suppressed: 1 hard bounce", "recorded").
    decision: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")


class RecipientState(Base):
    """State of one recipient address: counts, score, last failure, and suppression."""

    __tablename__ = "recipients"

    address: Mapped[str] = mapped_column(String(ADDRESS_LENGTH), primary_key=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Events by category, such as {"bad-address": 1, "spam-block": 3}.
    counts: Mapped[dict] = mapped_column(JSON, default=dict)
    last_reason: Mapped[str] = mapped_column(String(40), default="")
    last_category: Mapped[str] = mapped_column(String(40), default="")
    last_reply: Mapped[str] = mapped_column(String(LONG_TEXT), default="")
    # The application tag of the last event that had one (from a VERP token).
    last_tag: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    # The soft-bounce score (mailbox-unavailable and transient), its first and last day, and
    # the weight counted on each day, such as {"2026-11-02": 1.0}.
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0)
    score_days: Mapped[dict] = mapped_column(JSON, default=dict)
    score_started: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    score_updated: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                           nullable=True)
    suppressed: Mapped[bool] = mapped_column(Boolean, default=False)
    suppressed_reason: Mapped[str] = mapped_column(String(SHORT_TEXT), default="")
    suppressed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Notice(Base):
    """A message to the sender of refused mail, by mail or webhook, kept until delivered."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_due", "state", "next_attempt_at"),
                      Index("ix_notices_target", "channel", "target", "created_at"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("bounce_events.id", ondelete="CASCADE"))
    # "mail" or "webhook".
    channel: Mapped[str] = mapped_column(String(20))
    # The sender's address for mail; the VERP tag or the sender's address for a webhook.
    target: Mapped[str] = mapped_column(String(ADDRESS_LENGTH))
    payload: Mapped[dict] = mapped_column(JSON)
    # "pending", "sent", "given-up", or "rate-limited" (another notice went out recently).
    state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
