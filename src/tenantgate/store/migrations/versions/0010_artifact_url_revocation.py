"""Artifacts: signed URLs can be revoked (a URL generation per artifact), and storage keys can change.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.sql.compiler import IdentifierPreparer

from tenantgate.store._roles import RoleNames

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A locally signed URL carries the generation it was minted under; revoking bumps it, so every
    # URL minted before stops verifying. The S3 backend re-keys the object instead (a presigned URL
    # cannot be recalled), which is why the app role may now change storage_key too.
    op.execute(
        "ALTER TABLE tenantgate.artifacts "
        "ADD COLUMN url_generation integer NOT NULL DEFAULT 0 CHECK (url_generation >= 0)"
    )
    roles = op.get_context().opts["tenantgate_roles"]
    assert isinstance(roles, RoleNames)
    app = IdentifierPreparer(op.get_bind().dialect).quote(roles.app)
    op.execute(f"GRANT UPDATE (url_generation, storage_key) ON tenantgate.artifacts TO {app}")


def downgrade() -> None:
    roles = op.get_context().opts["tenantgate_roles"]
    app = IdentifierPreparer(op.get_bind().dialect).quote(roles.app)
    op.execute(f"REVOKE UPDATE (url_generation, storage_key) ON tenantgate.artifacts FROM {app}")
    op.execute("ALTER TABLE tenantgate.artifacts DROP COLUMN url_generation")
