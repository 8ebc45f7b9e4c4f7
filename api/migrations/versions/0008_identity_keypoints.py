"""identities.keypoints_encrypted: InstantID's five face keypoints, sealed like the embedding

Nullable: identities enrolled before this revision, or with a backend that gives no
insightface keypoints (dlib), have none; InstantID refuses them with
``missing_face_keypoints`` until the person enrolls again.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.add_column(sa.Column("keypoints_encrypted", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("identities") as batch:
        batch.drop_column("keypoints_encrypted")
