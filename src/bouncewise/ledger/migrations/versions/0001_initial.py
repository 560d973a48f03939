"""Create the ledger's tables: bounce messages, events, recipients and notices.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bounce_messages",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_key", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.String(2000), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.String(2000), nullable=False, server_default=""),
        sa.Column("verp_recipient", sa.String(320), nullable=False, server_default=""),
        sa.Column("verp_tag", sa.String(200), nullable=False, server_default=""),
    )
    op.create_table(
        "bounce_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("message_id", sa.Integer,
                  sa.ForeignKey("bounce_messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("hard_bounce", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default=""),
        sa.Column("reply_code", sa.String(3), nullable=False, server_default=""),
        sa.Column("diagnostic", sa.String(2000), nullable=False, server_default=""),
        sa.Column("remote_mta", sa.String(200), nullable=False, server_default=""),
        sa.Column("sender", sa.String(320), nullable=False, server_default=""),
        sa.Column("original_message_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("subject", sa.String(200), nullable=False, server_default=""),
        sa.Column("feedback_type", sa.String(40), nullable=False, server_default=""),
        sa.Column("advice", sa.String(2000), nullable=False, server_default=""),
        sa.Column("tag", sa.String(200), nullable=False, server_default=""),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(200), nullable=False, server_default=""),
        sa.UniqueConstraint("message_id", "recipient"),
    )
    op.create_index("ix_bounce_events_recipient", "bounce_events", ["recipient"])
    op.create_table(
        "recipients",
        sa.Column("address", sa.String(320), primary_key=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        sa.Column("last_reason", sa.String(40), nullable=False, server_default=""),
        sa.Column("last_category", sa.String(40), nullable=False, server_default=""),
        sa.Column("last_reply", sa.String(2000), nullable=False, server_default=""),
        sa.Column("bounce_score", sa.Float, nullable=False, server_default="0"),
        sa.Column("score_started", sa.DateTime(timezone=True), nullable=True),
        sa.Column("score_updated", sa.DateTime(timezone=True), nullable=True),
        sa.Column("suppressed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("suppressed_reason", sa.String(200), nullable=False, server_default=""),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("event_id", sa.Integer,
                  sa.ForeignKey("bounce_events.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel", sa.String(20), nullable=False),
        sa.Column("target", sa.String(320), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("state", sa.String(20), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_notices_due", "notices", ["state", "next_attempt_at"])
    op.create_index("ix_notices_target", "notices", ["channel", "target", "created_at"])


def downgrade() -> None:
    op.drop_table("notices")
    op.drop_table("recipients")
    op.drop_table("bounce_events")
    op.drop_table("bounce_messages")
