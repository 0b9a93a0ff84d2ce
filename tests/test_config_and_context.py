"""Unsafe configurations refuse to start; contexts cannot widen themselves."""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from pydantic import ValidationError

import tenantgate
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode, PrincipalKind, Role, TenantContext
from tenantgate.errors import ConfigurationError
from tenantgate.store import Database
from tests.conftest import DatabaseFixture


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_defaults_are_the_restrictive_mode_and_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TENANTGATE_MODE", "TENANTGATE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = _settings()
    assert settings.mode is DeploymentMode.SAAS
    assert settings.embedded


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"database_url": "postgresql://a@h/db", "pepper": "p" * 40}, "TENANTGATE_ADMIN_DATABASE_URL"),
        ({"database_url": "postgresql://a@h/db", "admin_database_url": "postgresql://b@h/db"}, "TENANTGATE_PEPPER"),
        ({"pepper": "short"}, "at least 32"),
        (
            {"database_url": "mysql://a@h/db", "admin_database_url": "postgresql://b@h/db", "pepper": "p" * 40},
            "postgresql://",
        ),
    ],
)
def test_unsafe_or_incomplete_configuration_is_refused(values: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle):
        _settings(**values).check()


def test_mode_from_environment_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENANTGATE_MODE", "self_hosted")
    assert _settings().mode is DeploymentMode.SELF_HOSTED
    monkeypatch.setenv("TENANTGATE_MODE", "yolo")
    with pytest.raises(ValidationError):
        _settings()


def test_role_prefix_must_be_a_safe_identifier() -> None:
    with pytest.raises(ValidationError):
        _settings(db_role_prefix='x"; DROP ROLE postgres; --')


async def test_an_app_role_that_can_bypass_rls_refuses_to_start(test_db: DatabaseFixture) -> None:
    # Pointing the app URL at the owner (which owns the tables) or the admin (BYPASSRLS) must fail verify().
    for wrong in (test_db.urls.owner, test_db.urls.admin):
        db = Database(app_url=wrong, admin_url=test_db.urls.admin, roles=test_db.roles)
        try:
            with pytest.raises(ConfigurationError, match="bypass row-level security"):
                await db.verify()
        finally:
            await db.dispose()


def _ctx(**changes: object) -> TenantContext:
    base = TenantContext(
        tenant_id=uuid.uuid4(),
        principal_id=uuid.uuid4(),
        kind=PrincipalKind.USER,
        roles=frozenset({Role.ADMIN}),
        mode=DeploymentMode.SAAS,
        request_id="r",
    )
    return dataclasses.replace(base, **changes)


def test_context_is_immutable() -> None:
    ctx = _ctx()
    with pytest.raises(dataclasses.FrozenInstanceError):
        ctx.tenant_id = uuid.uuid4()  # type: ignore[misc]


def test_ai_execution_never_holds_more_than_its_principal() -> None:
    user = _ctx()
    run = user.for_ai_execution(uuid.uuid4(), roles=frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER}))
    assert run.kind is PrincipalKind.AI_EXECUTION
    assert run.acting_for == user.principal_id
    assert run.tenant_id == user.tenant_id
    assert run.roles == frozenset({Role.ADMIN, Role.MEMBER})  # owner was asked for and not granted
    narrowed = user.for_ai_execution(uuid.uuid4(), roles=frozenset({Role.MEMBER}))
    assert narrowed.roles == frozenset({Role.MEMBER})
    with pytest.raises(ValueError, match="cannot start another"):
        run.for_ai_execution(uuid.uuid4())


def test_ai_execution_must_name_who_it_acts_for() -> None:
    with pytest.raises(ValueError, match="must name the principal"):
        _ctx(kind=PrincipalKind.AI_EXECUTION)
    with pytest.raises(ValueError, match="only AI execution"):
        _ctx(acting_for=uuid.uuid4())


def test_role_implication() -> None:
    assert Role.OWNER.implied() == {Role.OWNER, Role.ADMIN, Role.MEMBER}
    assert Role.ADMIN.implied() == {Role.ADMIN, Role.MEMBER}
    assert Role.MEMBER.implied() == {Role.MEMBER}


def test_public_surface() -> None:
    assert set(tenantgate.__all__) == {
        "DeploymentMode", "PrincipalKind", "Role", "TenantContext", "TenantgateError", "__version__",
    }  # fmt: skip
    for name in tenantgate.__all__:
        assert hasattr(tenantgate, name)
