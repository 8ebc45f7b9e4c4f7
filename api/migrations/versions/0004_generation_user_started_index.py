"""generations: index by (user_id, started_at)

Claims serve users in turn: the queued job of the user served least recently
goes first, and "last served" is the newest ``started_at`` among the user's
jobs. This index finds it in one step however many jobs the user made.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index("ix_generation_user_started", ["user_id", "started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.drop_index("ix_generation_user_started")
