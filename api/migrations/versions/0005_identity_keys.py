"""identity_keys: one wrapped data key per identity (crypto-shredding, issue 16)

Embeddings enrolled before this revision stay encrypted under the master key and have no
row here; the service reads them as such and gives each a data key at its next start
(``api.erasure.seal_legacy_embeddings``): a migration cannot, as it has no master key.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_keys",
        sa.Column("identity_id", sa.String(length=32), nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["identities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("identity_id"),
    )


def downgrade() -> None:
    # Identities sealed under data keys do not open without them: downgrading loses them.
    op.drop_table("identity_keys")
