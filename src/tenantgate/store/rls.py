"""The one way a table becomes tenant-owned. Called from migrations.

``make_tenant_owned("memory_entries")`` enables and forces row-level security, adds
the single ``tenant_isolation`` policy for all commands and grants the app role its
privileges. Later issues give their tables the same treatment with this one call; the
catalog test in ``tests/test_rls_catalog.py`` fails if a table with a ``tenant_id``
column was missed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from alembic import op
from sqlalchemy.sql.compiler import IdentifierPreparer

from tenantgate.store._roles import RoleNames
from tenantgate.store._schema import SCHEMA

__all__ = ["CURRENT_TENANT", "TENANT_SETTING", "grant_platform_only", "make_tenant_owned", "reserve_for_admin"]

TENANT_SETTING = "tenantgate.tenant_id"
# nullif: once a transaction-local setting has been used on a pooled connection, it reads
# back as '' rather than NULL afterwards; '' must mean "no tenant", i.e. no rows, not an error.
CURRENT_TENANT = f"nullif(current_setting('{TENANT_SETTING}', true), '')::uuid"

_APP_DEFAULT = ("SELECT", "INSERT", "UPDATE", "DELETE")


def _roles() -> RoleNames:
    roles = op.get_context().opts.get("tenantgate_roles")
    if not isinstance(roles, RoleNames):
        raise RuntimeError("migrations must run through tenantgate (tenantgate db init / db migrate)")
    return roles


def _q(name: str) -> str:
    return IdentifierPreparer(op.get_bind().dialect).quote(name)


def make_tenant_owned(table: str, *, column: str = "tenant_id", app_privileges: Iterable[str] = _APP_DEFAULT) -> None:
    """Enable + force RLS on ``table`` with the tenant policy, and grant the roles."""
    roles = _roles()
    qualified = f"{_q(SCHEMA)}.{_q(table)}"
    predicate = f"{_q(column)} = {CURRENT_TENANT}"
    privileges = ", ".join(p.upper() for p in app_privileges if p.upper() in _APP_DEFAULT)
    op.execute(f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY")
    op.execute(f"ALTER TABLE {qualified} FORCE ROW LEVEL SECURITY")
    op.execute(f"CREATE POLICY tenant_isolation ON {qualified} USING ({predicate}) WITH CHECK ({predicate})")
    if privileges:
        op.execute(f"GRANT {privileges} ON {qualified} TO {_q(roles.app)}")
    op.execute(f"GRANT ALL ON {qualified} TO {_q(roles.admin)}")


def grant_platform_only(table: str) -> None:
    """A platform table (no tenant_id): the admin role only; the app role gets nothing."""
    roles = _roles()
    qualified = f"{_q(SCHEMA)}.{_q(table)}"
    op.execute(f"REVOKE ALL ON {qualified} FROM PUBLIC")
    op.execute(f"GRANT ALL ON {qualified} TO {_q(roles.admin)}")


def reserve_for_admin(table: str, *, column: str = "tenant_id", value: str) -> None:
    """Rows with ``column = value`` exist for the admin role only (a restrictive policy on the app role).

    For tables where one reserved id stands for the platform itself (the audit log's platform
    chain): without this, an app-role session that set the tenant to that id could write there.
    """
    roles = _roles()
    qualified = f"{_q(SCHEMA)}.{_q(table)}"
    predicate = f"{_q(column)} <> '{uuid.UUID(value)}'::uuid"
    op.execute(
        f"CREATE POLICY admin_only_{table} ON {qualified} AS RESTRICTIVE TO {_q(roles.app)} "
        f"USING ({predicate}) WITH CHECK ({predicate})"
    )
