"""account face: one reference face per personal account, operator accounts, live capture
(issue 19)

- ``users.kind``: ``personal`` (the default: enrolls its holder's face only) or ``operator``.
- ``account_faces`` / ``account_face_keys``: the account's reference embedding, sealed like
  an identity's (api/crypto.py) under a data key kept in a row of its own, so that erasing
  it shreds the key.
- ``identities.capture``: how an enrollment's face was captured, ``upload`` or ``live``.
- ``capture_challenges``: single-use head-turn challenges of the web camera capture (only
  the SHA-256 of each nonce is stored).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), nullable=False, server_default="personal")
        )
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("capture", sa.String(length=16), nullable=False, server_default="upload")
        )
    op.create_table(
        "account_faces",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("embedding_encrypted", sa.LargeBinary(), nullable=False),
        sa.Column("embedding_dim", sa.Integer(), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "account_face_keys",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["account_faces.user_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "capture_challenges",
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("steps", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("nonce_hash"),
    )
    with op.batch_alter_table("capture_challenges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_capture_challenges_expires_at"), ["expires_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_capture_challenges_user_id"), ["user_id"], unique=False
        )


def downgrade() -> None:
    # The reference faces go with their tables: after an upgrade again, each personal
    # account's next enrollment sets its reference anew.
    with op.batch_alter_table("capture_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_capture_challenges_user_id"))
        batch_op.drop_index(batch_op.f("ix_capture_challenges_expires_at"))
    op.drop_table("capture_challenges")
    op.drop_table("account_face_keys")
    op.drop_table("account_faces")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.drop_column("capture")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("kind")
