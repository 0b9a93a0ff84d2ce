"""The data plane: PostgreSQL with forced row-level security, three roles, one door per role."""

from tenantgate.store import _schema as tables
from tenantgate.store._citus import CITUS_ANCHOR, CITUS_EXCEPTIONS, CitusPlan, citus_plan
from tenantgate.store._database import AuthTransaction, Database, driver_of
from tenantgate.store._embedded import EmbeddedPostgres, write_private
from tenantgate.store._provision import DatabaseUrls, head_revision, migrate, provision
from tenantgate.store._roles import RoleNames
from tenantgate.store._set_local import POLICY_SETTINGS, set_local
from tenantgate.store._versions import restore_target
from tenantgate.store.rls import CURRENT_TENANT, TENANT_SETTING

__all__ = [
    "CITUS_ANCHOR",
    "CITUS_EXCEPTIONS",
    "CURRENT_TENANT",
    "POLICY_SETTINGS",
    "TENANT_SETTING",
    "AuthTransaction",
    "CitusPlan",
    "Database",
    "DatabaseUrls",
    "EmbeddedPostgres",
    "RoleNames",
    "citus_plan",
    "driver_of",
    "head_revision",
    "migrate",
    "provision",
    "restore_target",
    "set_local",
    "tables",
    "write_private",
]
