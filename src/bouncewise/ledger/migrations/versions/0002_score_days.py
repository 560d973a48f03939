"""Keep the days a recipient's soft bounces were counted on, and the last application tag.

The score used to keep only its first and last day, so bounces taken in out of date order
(a Maildir backlog, several ingesters) were not counted. The days themselves make the score
independent of the order of intake. The tag lets an application map a suppressed address
back to its own user.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.add_column(sa.Column("score_days", sa.JSON, nullable=False,
                                   server_default="{}"))
        batch.add_column(sa.Column("last_tag", sa.String(200), nullable=False,
                                   server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("recipients") as batch:
        batch.drop_column("last_tag")
        batch.drop_column("score_days")
