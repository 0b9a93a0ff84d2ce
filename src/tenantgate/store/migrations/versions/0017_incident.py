"""Incident controls: a platform kill switch may pause every tenant's AI execution (scope 'ai').

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The same shape tenant_switches has had since 0003: 'all' and 'ai' take no target.
    op.execute(
        """
        ALTER TABLE tenantgate.platform_switches
            DROP CONSTRAINT platform_switches_scope_check,
            DROP CONSTRAINT platform_switches_check,
            ADD CONSTRAINT platform_switches_scope_check CHECK (scope IN ('all', 'ai', 'tool', 'integration')),
            ADD CONSTRAINT platform_switches_check CHECK ((scope IN ('all', 'ai')) = (target = ''))
        """
    )


def downgrade() -> None:
    op.execute("DELETE FROM tenantgate.platform_switches WHERE scope = 'ai'")
    op.execute(
        """
        ALTER TABLE tenantgate.platform_switches
            DROP CONSTRAINT platform_switches_scope_check,
            DROP CONSTRAINT platform_switches_check,
            ADD CONSTRAINT platform_switches_scope_check CHECK (scope IN ('all', 'tool', 'integration')),
            ADD CONSTRAINT platform_switches_check CHECK ((scope = 'all') = (target = ''))
        """
    )
