"""``SET LOCAL tenantgate.<name> = <literal>``: the one way a row-security setting is set.

A ``SET LOCAL`` (not ``set_config``) because Citus replays a transaction's ``SET LOCAL``
statements on every worker connection it uses (``citus.propagate_set_commands = 'local'``),
so each shard's policies see the same tenant as the coordinator. ``SET`` takes no bind
parameters, so the value is a literal: a UUID comes only from a ``uuid.UUID`` (hex digits and
dashes), any other text is quoted by psycopg's ``sql.Literal`` for the connection it runs on
(key prefixes and tenant names are untrusted input). psycopg refuses a NUL character before
anything is sent, as it does for a bind parameter.
"""

from __future__ import annotations

import uuid

from psycopg import sql

from tenantgate.store.rls import TENANT_SETTING

__all__ = ["POLICY_SETTINGS", "set_local"]

# Every setting a row-security policy reads (tests/test_citus_shape.py checks the policies).
POLICY_SETTINGS = frozenset(
    {TENANT_SETTING, "tenantgate.auth_key_prefix", "tenantgate.webhook_endpoint", "tenantgate.auth_tenant_name"}
)


def set_local(name: str, value: uuid.UUID | str) -> sql.Composed:
    """The statement that sets ``name`` to ``value`` until the transaction ends."""
    if name not in POLICY_SETTINGS:
        raise ValueError(f"{name!r} is not a tenantgate row-security setting")
    text = str(value) if isinstance(value, uuid.UUID) else value
    return sql.SQL("SET LOCAL {} = {}").format(sql.SQL(name), sql.Literal(text))
