"""Skills: the platform catalog (read-only to tenants), installs, authoring, versions, the prompt layer."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from typer.testing import CliRunner

from tenantgate.cli import app
from tenantgate.config import Settings
from tenantgate.errors import Conflict, InvalidInput, NotFound, RoleRequired
from tenantgate.installation import Services
from tenantgate.logs import configure_logging
from tenantgate.skills import SkillStore
from tests.conftest import DatabaseFixture, TenantFixture
from tests.state_helpers import actions, as_app, member_key


def skill(name: str, description: str = "A skill.", body: str = "Do the thing carefully.") -> str:
    return f"---\nname: {name}\ndescription: {description}\nmetadata: {{owner: ops}}\n---\n{body}\n"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_install_from_the_catalog_pins_the_version_and_upgrades(
    services: Services, tenant_a: TenantFixture
) -> None:
    store, ctx, name = services.skills, tenant_a.system, unique("triage")
    published = await store.publish(skill(name, body="Version one."))
    assert published.version == 1
    assert name in {c.name for c in await store.catalog(ctx)}
    installed = await store.install(ctx, name)
    assert (installed.origin, installed.catalog_version, installed.version) == ("catalog", 1, 1)
    with pytest.raises(Conflict, match="latest version"):
        await store.install(ctx, name)
    await store.publish(skill(name, body="Version two."))
    assert (await store.get(ctx, name)).body == "Version one."  # the tenant's copy does not move by itself
    upgraded = await store.install(ctx, name)
    assert (upgraded.catalog_version, upgraded.version, upgraded.body) == (2, 2, "Version two.")
    with pytest.raises(NotFound):
        await store.install(ctx, unique("missing"))
    assert await actions(services, tenant_a, "skill.") == ["skill.installed", "skill.updated"]


async def test_authoring_versions_enabling_and_removal(services: Services, tenant_a: TenantFixture) -> None:
    store, ctx, name = services.skills, tenant_a.system, unique("tone")
    first = await store.author(ctx, skill(name, body="Be brief."))
    second = await store.author(ctx, skill(name, body="Be brief and friendly."))
    same = await store.author(ctx, skill(name, body="Be brief and friendly."))
    assert (first.version, second.version, same.version) == (1, 2, 2)
    assert second.metadata == {"owner": "ops"}
    disabled = await store.set_enabled(ctx, name, False)
    removed = await store.remove(ctx, name)
    assert (disabled.version, removed.version) == (3, 4)
    history = await store.versions(ctx, first.id)
    assert [(v.version, v.change) for v in history] == [(1, "authored"), (2, "updated"), (3, "disabled"),
                                                        (4, "removed")]  # fmt: skip
    assert "Be brief." in history[0].source
    with pytest.raises(NotFound):
        await store.get(ctx, name)


async def test_catalog_and_tenant_skills_do_not_overwrite_each_other(
    services: Services, tenant_a: TenantFixture
) -> None:
    store, ctx = services.skills, tenant_a.system
    name = unique("shared")
    await store.publish(skill(name))
    await store.install(ctx, name)
    with pytest.raises(Conflict, match="installed from the catalog"):
        await store.author(ctx, skill(name, body="Mine now."))
    own = unique("own")
    await store.author(ctx, skill(own))
    await store.publish(skill(own))
    with pytest.raises(Conflict, match="wrote its own"):
        await store.install(ctx, own)


async def test_only_owners_and_admins_change_skills(services: Services, tenant_a: TenantFixture) -> None:
    member = await services.authenticator.authenticate(f"Bearer {await member_key(services, tenant_a)}", request_id="t")
    name = unique("x")
    await services.skills.publish(skill(name))
    for attempt in (
        lambda: services.skills.author(member, skill(name)),
        lambda: services.skills.install(member, name),
        lambda: services.skills.set_enabled(member, name, False),
        lambda: services.skills.remove(member, name),
    ):
        with pytest.raises(RoleRequired):
            await attempt()
    assert await services.skills.installed(member) == []


async def test_prompt_layer_has_enabled_skills_with_names_and_respects_the_cap(
    services: Services, tenant_a: TenantFixture
) -> None:
    ctx = tenant_a.system
    store = SkillStore(db=services.db, audit=services.audit, prompt_max_chars=1000)
    assert await store.prompt_layer(ctx) == ""
    await store.author(ctx, skill("alpha", "Greeting rules.", "Say hello first."))
    await store.author(ctx, skill("beta", "Huge.", "x" * 900))
    await store.author(ctx, skill("gamma", "Closing rules.", "Say goodbye last."))
    await store.author(ctx, skill("delta", "Off.", "Never shown."))
    await store.set_enabled(ctx, "delta", False)
    layer = await store.prompt_layer(ctx)
    assert len(layer) <= 1000
    assert layer.startswith("# Tenant skills")
    assert "## Skill: alpha\nGreeting rules.\n\nSay hello first." in layer
    assert "## Skill: gamma\nClosing rules.\n\nSay goodbye last." in layer
    assert "xxxxx" not in layer  # beta does not fit whole, so it is left out, not cut
    assert "Not shown, over the skill text budget: beta." in layer
    assert "Never shown" not in layer
    assert "delta" not in layer


async def test_another_tenant_sees_none_of_its_skills(
    services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    name = unique("private")
    mine = await services.skills.author(tenant_a.system, skill(name, body="A's secret method."))
    assert await services.skills.installed(tenant_b.system) == []
    assert await services.skills.versions(tenant_b.system, mine.id) == []
    assert "secret method" not in await services.skills.prompt_layer(tenant_b.system)
    with pytest.raises(NotFound):
        await services.skills.get(tenant_b.system, name)
    with pytest.raises(NotFound):
        await services.skills.remove(tenant_b.system, name)
    # B may write a skill of the same name: its own, independent of A's.
    theirs = await services.skills.author(tenant_b.system, skill(name, body="B's method."))
    assert theirs.id != mine.id
    assert (await services.skills.get(tenant_a.system, name)).body == "A's secret method."


async def test_sql_level_the_app_role_reads_but_cannot_write_the_catalog(
    services: Services, test_db: DatabaseFixture, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    name = unique("cat")
    await services.skills.publish(skill(name))
    await services.skills.author(tenant_a.system, skill(unique("a-only")))
    with as_app(test_db, tenant_b.id) as conn:
        assert conn.execute("SELECT count(*) FROM tenantgate.skill_catalog WHERE name = %s", [name]).fetchone() == (1,)
        for table in ("skills", "skill_versions"):
            assert conn.execute(f"SELECT count(*) FROM tenantgate.{table}").fetchone() == (0,), table
        assert conn.execute("UPDATE tenantgate.skills SET enabled = false").rowcount == 0
    for statement in (
        "UPDATE tenantgate.skill_catalog SET source = 'evil'",
        "INSERT INTO tenantgate.skill_catalog (name, version, description, source) VALUES ('evil', 1, 'd', 's')",
        "DELETE FROM tenantgate.skill_catalog",
    ):
        with as_app(test_db, tenant_a.id) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(statement)


async def test_skills_over_http(
    client: httpx.AsyncClient, services: Services, tenant_a: TenantFixture, tenant_b: TenantFixture
) -> None:
    _, platform_key = await services.platform_keys.create("skills-test")
    operator = {"Authorization": f"Bearer {platform_key}"}
    owner, member = tenant_a.headers(), tenant_a.headers(await member_key(services, tenant_a))
    name = unique("onboarding")
    published = await client.post("/v1/platform/skill-catalog", json={"source": skill(name)}, headers=operator)
    assert published.status_code == 201, published.text
    assert (
        await client.post("/v1/platform/skill-catalog", json={"source": skill(name)}, headers=owner)
    ).status_code == 401
    assert name in {c["name"] for c in (await client.get("/v1/skills/catalog", headers=member)).json()}

    assert (await client.post(f"/v1/skills/catalog/{name}/install", headers=member)).status_code == 403
    installed = await client.post(f"/v1/skills/catalog/{name}/install", headers=owner)
    assert installed.status_code == 201, installed.text
    bad = await client.post("/v1/skills", json={"source": "---\nname: [oops\n---\nbody\n"}, headers=owner)
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_input")
    assert "not valid YAML at line" in bad.json()["message"]
    own = unique("notes")
    authored = await client.post("/v1/skills", json={"source": skill(own)}, headers=owner)
    assert (authored.status_code, authored.json()["origin"]) == (201, "tenant")
    assert (await client.post("/v1/skills", json={"source": skill(own)}, headers=member)).status_code == 403

    assert sorted(s["name"] for s in (await client.get("/v1/skills", headers=member)).json()) == sorted([name, own])
    detail = (await client.get(f"/v1/skills/{own}", headers=member)).json()
    assert [v["change"] for v in detail["versions"]] == ["authored"]
    patched = await client.patch(f"/v1/skills/{own}", json={"enabled": False}, headers=owner)
    assert (patched.json()["enabled"], patched.json()["version"]) == (False, 2)

    other = tenant_b.headers()
    assert (await client.get(f"/v1/skills/{own}", headers=other)).status_code == 404
    assert (await client.patch(f"/v1/skills/{own}", json={"enabled": True}, headers=other)).status_code == 404
    assert (await client.delete(f"/v1/skills/{own}", headers=other)).status_code == 404
    assert (await client.get("/v1/skills", headers=other)).json() == []
    assert (await client.delete(f"/v1/skills/{own}", headers=owner)).json()["version"] == 3


async def test_bad_skill_input_changes_nothing(services: Services, tenant_a: TenantFixture) -> None:
    with pytest.raises(InvalidInput):
        await services.skills.author(tenant_a.system, "---\nname: ok\n---\nno description\n")
    with pytest.raises(InvalidInput):
        await services.skills.publish("no front matter")
    assert await services.skills.installed(tenant_a.system) == []


def test_cli_publishes_skill_files_after_checking_all_of_them(
    test_db: DatabaseFixture, settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert settings.master_key is not None
    for name, value in {"DATABASE_URL": test_db.urls.app, "ADMIN_DATABASE_URL": test_db.urls.admin,
                        "DB_ROLE_PREFIX": settings.db_role_prefix, "PEPPER": "p" * 40,
                        "MASTER_KEY": settings.master_key.get_secret_value()}.items():  # fmt: skip
        monkeypatch.setenv(f"TENANTGATE_{name}", value)
    good, bad = tmp_path / "good.md", tmp_path / "bad.md"
    name = unique("cli")
    good.write_text(skill(name), encoding="utf-8")
    bad.write_text("---\nname: x\n---\nno description\n", encoding="utf-8")
    try:
        refused = CliRunner().invoke(app, ["skills", "publish", str(good), str(bad)])
        published = CliRunner().invoke(app, ["skills", "publish", str(good)])
    finally:
        # The CLI points logging at the runner's captured stderr, which is closed afterwards.
        configure_logging("warning")
    assert isinstance(refused.exception, InvalidInput)
    assert "bad.md" in refused.exception.message
    assert published.exit_code == 0, published.output
    assert f"Published {name} version 1." in published.output
    with psycopg.connect(test_db.urls.admin) as conn:
        assert conn.execute("SELECT version FROM tenantgate.skill_catalog WHERE name = %s", [name]).fetchall() == [(1,)]


async def test_concurrent_authoring_of_one_new_skill_makes_one_skill(
    services: Services, tenant_a: TenantFixture
) -> None:
    name = unique("race")
    written = await asyncio.gather(*(services.skills.author(tenant_a.system, skill(name)) for _ in range(4)))
    assert {s.id for s in written} == {written[0].id}
    assert [v.change for v in await services.skills.versions(tenant_a.system, written[0].id)] == ["authored"]
