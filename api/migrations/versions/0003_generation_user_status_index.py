"""generations: index by (user_id, status)

Creating a job counts the user's queued and running jobs. With an index on
user_id alone that count read every job the user ever made; this one finds
the active ones directly, and still serves every lookup by user_id.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index("ix_generation_user_status", ["user_id", "status"], unique=False)
        batch_op.drop_index(batch_op.f("ix_generations_user_id"))


def downgrade() -> None:
    with op.batch_alter_table("generations", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_generations_user_id"), ["user_id"], unique=False)
        batch_op.drop_index("ix_generation_user_status")
