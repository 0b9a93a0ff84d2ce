"""Open an installation: settings -> database (embedded or external) -> pepper -> services.

Shared by the edges (``tenantgate serve``, the CLI, the worker) so each assembles the
same parts the same way, and tests can assemble them against their own database.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenantgate.audit import AuditLog
from tenantgate.auth import (
    Authenticator,
    JwtVerifier,
    KeyService,
    PlatformKeys,
    PrincipalService,
    load_pepper,
)
from tenantgate.config import Settings
from tenantgate.errors import ConfigurationError
from tenantgate.gate import Boundary, Confirmations, Gate, PolicyCache, PolicyStore
from tenantgate.memory import MemoryStore
from tenantgate.schedules import CronStore, HeartbeatStore, ScheduleLimits
from tenantgate.skills import SkillStore
from tenantgate.store import Database, DatabaseUrls, EmbeddedPostgres, RoleNames, migrate
from tenantgate.tenants import TenantService
from tenantgate.tools import Executor, Tool, ToolPackage, ToolRegistry, load_plugins
from tenantgate.tools.builtin import cron_tools, heartbeat_tools, memory_tools, skill_tools

__all__ = ["Installation", "Services", "build_registry"]


@dataclass(frozen=True, slots=True)
class Installation:
    """Where the data lives and with which credentials."""

    settings: Settings
    app_url: str
    admin_url: str
    owner_url: str | None
    roles: RoleNames
    pepper: bytes
    embedded: EmbeddedPostgres | None

    @classmethod
    def open(cls, settings: Settings, *, migrate_schema: bool = True) -> Installation:
        """Check the settings; start the embedded server (bootstrap on first start) or use the URLs."""
        settings.check()
        embedded: EmbeddedPostgres | None = None
        owner: str | None
        if settings.embedded:
            embedded = EmbeddedPostgres(settings.data_dir)
            urls: DatabaseUrls = embedded.start()  # migrates to head
            app, admin, owner, roles = urls.app, urls.admin, urls.owner, embedded.roles
        else:
            assert settings.database_url is not None
            assert settings.admin_database_url is not None
            app = settings.database_url.get_secret_value()
            admin = settings.admin_database_url.get_secret_value()
            owner = settings.owner_database_url.get_secret_value() if settings.owner_database_url else None
            roles = RoleNames.from_prefix(settings.db_role_prefix)
            if migrate_schema and owner is not None:
                migrate(owner, roles=roles)
        return cls(settings, app, admin, owner, roles, load_pepper(settings), embedded)

    def url(self, role: str) -> str:
        if role == "superuser":
            if self.embedded is None:
                raise ConfigurationError("The superuser URL is known only for the embedded server.")
            return self.embedded.superuser_url()
        url = {"app": self.app_url, "admin": self.admin_url, "owner": self.owner_url}[role]
        if url is None:
            raise ConfigurationError(f"No URL for the {role} role: set TENANTGATE_OWNER_DATABASE_URL.")
        return url

    def database(self) -> Database:
        return Database(
            app_url=self.app_url,
            admin_url=self.admin_url,
            roles=self.roles,
            pool_size=self.settings.db_pool_size,
        )


def build_registry(
    settings: Settings,
    *,
    memory: MemoryStore | None = None,
    cron: CronStore | None = None,
    heartbeat: HeartbeatStore | None = None,
    skills: SkillStore | None = None,
) -> ToolRegistry:
    """The process's tools: built-ins this mode allows (those whose stores are given), then the operator's plugins."""
    registry = ToolRegistry(settings.mode)
    families: list[tuple[list[Tool], list[ToolPackage]]] = []
    if memory is not None:
        families.append(memory_tools(memory))
    if cron is not None:
        families.append(cron_tools(cron))
    if heartbeat is not None:
        families.append(heartbeat_tools(heartbeat))
    if skills is not None:
        families.append(skill_tools(skills))
    for tools, packages in families:
        registry.register_available(tools)
        for package in packages:
            registry.add_package(package)
    load_plugins(registry, settings.plugins)
    return registry


@dataclass(frozen=True, slots=True)
class Services:
    """The services one process runs with, built once from an installation."""

    settings: Settings
    db: Database
    authenticator: Authenticator
    keys: KeyService
    principals: PrincipalService
    tenants: TenantService
    platform_keys: PlatformKeys
    audit: AuditLog
    registry: ToolRegistry
    policies: PolicyStore
    policy_cache: PolicyCache
    confirmations: Confirmations
    boundary: Boundary
    memory: MemoryStore
    cron: CronStore
    heartbeat: HeartbeatStore
    skills: SkillStore

    @classmethod
    def build(
        cls, installation: Installation, db: Database | None = None, registry: ToolRegistry | None = None
    ) -> Services:
        settings = installation.settings
        db = db or installation.database()
        jwt = JwtVerifier(settings.jwt_issuers) if settings.jwt_issuers else None
        audit = AuditLog(db=db)
        # Tenant-state stores exist before the registry: the built-in tools are built over them.
        limits = ScheduleLimits.from_settings(settings)
        memory = MemoryStore(db=db, audit=audit)
        cron = CronStore(db=db, audit=audit, limits=limits)
        heartbeat = HeartbeatStore(db=db, audit=audit, limits=limits)
        skills = SkillStore(db=db, audit=audit, prompt_max_chars=settings.skills_prompt_max_chars)
        if registry is None:
            registry = build_registry(settings, memory=memory, cron=cron, heartbeat=heartbeat, skills=skills)
        policies = PolicyStore(db=db, registry=registry, audit=audit)
        cache = PolicyCache(store=policies, listen_url=installation.app_url)
        confirmations = Confirmations(db=db, registry=registry, audit=audit)
        gate = Gate(registry=registry, policies=cache)
        return cls(
            settings=settings,
            db=db,
            authenticator=Authenticator(db=db, pepper=installation.pepper, mode=settings.mode, jwt=jwt, audit=audit),
            keys=KeyService(db=db, pepper=installation.pepper, audit=audit),
            principals=PrincipalService(db=db, audit=audit),
            tenants=TenantService(db=db, audit=audit),
            platform_keys=PlatformKeys(db=db, pepper=installation.pepper, audit=audit),
            audit=audit,
            registry=registry,
            policies=policies,
            policy_cache=cache,
            confirmations=confirmations,
            boundary=Boundary(
                gate=gate, executor=Executor(registry=registry), confirmations=confirmations, audit=audit
            ),
            memory=memory,
            cron=cron,
            heartbeat=heartbeat,
            skills=skills,
        )

    async def start(self) -> None:
        """Start what runs in the background (the policy listener). Call on the serving loop."""
        await self.policy_cache.start()

    async def stop(self) -> None:
        await self.policy_cache.stop()
        await self.audit.drain()  # access events still in flight are written, not dropped
        await self.db.dispose()
