"""Open an installation: settings -> database (embedded or external) -> pepper -> services.

Shared by the edges (``tenantgate serve``, the CLI, the worker) so each assembles the
same parts the same way, and tests can assemble them against their own database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from ipaddress import ip_network

import httpx

from tenantgate.agent import AgentRuntime, PlannerFactory, PlannerHttp, ProviderDefaults, RuntimeLimits
from tenantgate.alerts import Alerts, AlertStore, Notifier, Responses, WebhookPolicy, WindowCounter
from tenantgate.artifacts import (
    ArtifactLimits,
    ArtifactStorage,
    ArtifactStore,
    LocalStorage,
    S3Storage,
    ToolArtifacts,
    UrlSigner,
)
from tenantgate.audit import AuditLog
from tenantgate.auth import (
    Authenticator,
    ConsoleAuth,
    ConsoleTimeouts,
    JwtVerifier,
    KeyService,
    PasswordService,
    PlatformKeys,
    PrincipalService,
    load_pepper,
)
from tenantgate.channels import ScheduleRunner, WhatsAppChannel
from tenantgate.config import Settings
from tenantgate.context import TenantContext
from tenantgate.directives import DirectiveQueue, DirectiveStore
from tenantgate.egress import DomainLists, EgressHttp, EgressPolicy, ListsLoader, Resolver
from tenantgate.errors import ConfigurationError
from tenantgate.gate import PROFILES as COMPLIANCE_PROFILES
from tenantgate.gate import (
    Boundary,
    Confirmations,
    DirectiveRunner,
    Gate,
    PolicyCache,
    PolicyStore,
    SwitchScope,
    quota_hook,
)
from tenantgate.memory import MemoryStore
from tenantgate.metrics import Metrics, QueueSampler, tenant_labels
from tenantgate.purge import PurgeService
from tenantgate.quotas import Budgets, Limits, PlanStore, PriceTable, Quotas, RateLimiter
from tenantgate.redact import Redactor
from tenantgate.retention import RetentionDefaults, RetentionJob, RetentionSettings
from tenantgate.schedules import CronStore, HeartbeatStore, ScheduleLimits
from tenantgate.signals import SignalBus, SignalStore
from tenantgate.skills import SkillStore
from tenantgate.store import Database, DatabaseUrls, EmbeddedPostgres, RoleNames, migrate
from tenantgate.tenants import TenantService
from tenantgate.tools import (
    Executor,
    HttpSource,
    Tool,
    ToolPackage,
    ToolRegistry,
    ToolResources,
    load_plugins,
)
from tenantgate.tools.builtin import (
    ProviderUrls,
    api_tools,
    cron_tools,
    heartbeat_tools,
    memory_tools,
    message_tools,
    self_hosted_tools,
    skill_tools,
)
from tenantgate.vault import CredentialStore, KeyProvider, Vault, key_provider_from_settings
from tenantgate.webhooks import WebhookEndpoints, WebhookIngest

__all__ = [
    "Installation",
    "Outside",
    "Services",
    "alert_service",
    "artifact_storage",
    "artifact_store",
    "build_registry",
    "egress_policy",
    "retention_job",
    "tenant_domain_lists",
    "tool_artifacts",
]


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
    """The process's tools: the built-ins this mode allows, then the operator's plugins.

    The tenant-state families (memory, cron, heartbeat, skills) are built over their stores, so
    they are registered when the stores are given (``Services.build`` gives them).
    """
    registry = ToolRegistry(settings.mode)
    _register(registry, api_tools(ProviderUrls.from_settings(settings)))
    local_tools, local_packages = self_hosted_tools(settings)
    _register(registry, [*local_tools, *local_packages])  # saas leaves them out: the gate says capability_denied
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
        _register(registry, [*tools, *packages])
    load_plugins(registry, settings.plugins)
    return registry


def _register(registry: ToolRegistry, items: list[Tool | ToolPackage]) -> None:
    registry.register_available([item for item in items if isinstance(item, Tool)])
    for item in items:
        if isinstance(item, ToolPackage):
            registry.add_package(item)


def tenant_domain_lists(cache: PolicyCache) -> ListsLoader:
    """Each tenant's egress domain lists, as its current policy states them (from the policy cache)."""

    async def lists(ctx: TenantContext) -> DomainLists:
        view = await cache.view(ctx)  # raises PolicyUnavailable when stale: fail closed, no request
        return DomainLists(allow=view.egress_allow, deny=view.egress_deny)

    return lists


def egress_policy(settings: Settings) -> EgressPolicy:
    """The platform's egress policy for tools: public addresses, plus internal ones an operator allows."""
    return EgressPolicy(
        allowed_private=frozenset(ip_network(item) for item in settings.egress_allow_private),
        timeout_s=settings.egress_timeout_s,
        max_response_bytes=settings.egress_max_response_bytes,
    )


def artifact_storage(settings: Settings) -> ArtifactStorage:
    """The configured artifact backend: the local directory, or an S3 bucket checked reachable now."""
    if settings.artifact_backend == "local":
        return LocalStorage(settings.artifacts_dir)
    assert settings.artifact_s3_bucket is not None  # Settings.check
    storage = S3Storage(
        bucket=settings.artifact_s3_bucket,
        prefix=settings.artifact_s3_prefix,
        region=settings.artifact_s3_region,
        endpoint_url=settings.artifact_s3_endpoint_url,
        sse=settings.artifact_s3_sse,
        kms_key_id=settings.artifact_s3_kms_key_id,
        timeout_s=settings.artifact_s3_timeout_s,
    )
    storage.check()  # refuse to start against a bucket we cannot reach
    return storage


def artifact_store(settings: Settings, *, db: Database, audit: AuditLog, pepper: bytes) -> ArtifactStore:
    """The artifact service on the configured backend, signing local URLs with the settings' key or the pepper."""
    key = settings.artifact_url_key.get_secret_value().encode("utf-8") if settings.artifact_url_key else pepper
    limits = ArtifactLimits(
        max_bytes=settings.artifact_max_bytes,
        tenant_quota_bytes=settings.artifact_tenant_quota_bytes,
        url_ttl_s=settings.artifact_url_ttl_s,
        url_max_ttl_s=settings.artifact_url_max_ttl_s,
    )
    return ArtifactStore(db=db, audit=audit, storage=artifact_storage(settings), signer=UrlSigner(key), limits=limits)


def retention_job(settings: Settings, *, db: Database, audit: AuditLog, artifacts: ArtifactStore) -> RetentionJob:
    """The retention job over the settings' default periods and the compliance modes' floors."""
    floors = {mode.value: dict(profile.retention_floor_days) for mode, profile in COMPLIANCE_PROFILES.items()}
    periods = RetentionSettings(db=db, audit=audit, defaults=RetentionDefaults.from_settings(settings), floors=floors)
    return RetentionJob(
        db=db, audit=audit, periods=periods, artifacts=artifacts, mode=settings.mode,
        batch_size=settings.retention_batch_size,
    )  # fmt: skip


def tool_artifacts(store: ArtifactStore, cache: PolicyCache) -> ToolArtifacts:
    """Tools' artifact source: stores only for tenants whose compliance mode keeps raw content."""

    async def keeps_raw(ctx: TenantContext) -> bool:
        return (await cache.view(ctx)).compliance.keep_raw_content  # a stale policy raises: nothing kept

    return ToolArtifacts(store, keeps_raw=keeps_raw)


def alert_service(
    settings: Settings,
    *,
    db: Database,
    audit: AuditLog,
    http: HttpSource,
    credentials: CredentialStore,
    policies: PolicyStore,
    pepper: bytes,
    metrics: Metrics,
) -> Alerts:
    """Anomaly rules over the audit stream; webhooks through the egress door; responses through the services."""
    store = AlertStore(db=db, audit=audit)
    keys = KeyService(db=db, pepper=pepper, audit=audit)

    async def secret(ctx: TenantContext, name: str, alert_id: uuid.UUID) -> str:
        credential = await credentials.use(ctx, name, tool="alerts.webhook", call_id=alert_id, run_id=None)
        return credential.secret["secret"]

    async def pause_ai(ctx: TenantContext, reason: str) -> str:
        switch = await policies.set_tenant_switch(ctx, SwitchScope.AI, reason=reason, set_by="alerts")
        return f"AI paused (switch {switch.id})"

    async def revoke_key(ctx: TenantContext, prefix: str, reason: str) -> str:
        for key in await keys.list(ctx):
            if key.prefix == prefix:
                await keys.revoke(ctx, key.id)
                return f"key {key.id} revoked"
        return "no key of this tenant has that prefix"

    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    notifier = Notifier(
        store=store,
        client_for=lambda ctx, alert_id: http.client(ctx, tool="alerts.webhook", call_id=alert_id),
        secret_for=secret,
        policy=WebhookPolicy(attempts=settings.alerts_webhook_attempts, backoff_s=settings.alerts_webhook_backoff_s),
    )
    return Alerts(
        store=store,
        counter=WindowCounter(redis_url, timeout_s=settings.quota_backend_timeout_s),
        notifier=notifier,
        mode=settings.mode,
        responses=Responses(pause_ai=pause_ai, revoke_key=revoke_key),
        on_raised=lambda alert: metrics.alert_raised(alert.tenant_id, alert.rule, alert.severity),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Outside:
    """How tools and planners reach the outside world: one egress policy, and the resolver and dialer.

    Unset, the platform policy from the settings and the system's resolver and sockets. Tests and
    ``tenantgate demo`` give a resolver that knows only their fake hosts and a dialer that reaches
    only 127.0.0.1, so the real network is never touched.
    """

    policy: EgressPolicy
    resolver: Resolver | None = None
    dialer: Callable[[], httpx.AsyncBaseTransport] | None = None


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
    http: HttpSource  # tools' outbound HTTP: the egress door with each tenant's domain lists
    redactor: Redactor
    vault: Vault
    credentials: CredentialStore
    runtime: AgentRuntime
    memory: MemoryStore
    cron: CronStore
    heartbeat: HeartbeatStore
    skills: SkillStore
    directives: DirectiveRunner
    queue: DirectiveQueue | None  # set when TENANTGATE_DIRECTIVES=queue
    signals: SignalBus
    webhooks: WebhookIngest
    schedules: ScheduleRunner  # runs due cron jobs and heartbeat tasks (the worker calls it)
    quotas: Quotas
    artifacts: ArtifactStore
    retention: RetentionJob  # the worker runs it every TENANTGATE_RETENTION_EVERY_S; `.periods` per tenant
    metrics: Metrics  # this process's Prometheus registry, fed by the audit stream and the HTTP edge
    queue_sampler: QueueSampler
    alerts: Alerts
    passwords: PasswordService
    console: ConsoleAuth  # admin-console sign-in and sessions (tenantgate.api.console)
    purges: PurgeService  # purge by tenant: request, cancel, execute (the worker executes due ones)

    @classmethod
    def build(
        cls,
        installation: Installation,
        db: Database | None = None,
        registry: ToolRegistry | None = None,
        http: HttpSource | None = None,
        redactor: Redactor | None = None,
        key_provider: KeyProvider | None = None,
        *,
        planner_http: PlannerHttp | None = None,
        outside: Outside | None = None,
    ) -> Services:
        """Assemble the services.

        Pass ``redactor`` to share it with logging (``configure_logging``). ``http``,
        ``outside``, ``planner_http`` and ``key_provider`` replace the real sources (tests
        point them at loopback fakes).
        """
        settings = installation.settings
        db = db or installation.database()
        jwt = JwtVerifier(settings.jwt_issuers) if settings.jwt_issuers else None
        # One redaction pipeline for the process: its known secrets are everyone's.
        redactor = redactor if redactor is not None else Redactor()
        audit = AuditLog(db=db, redactor=redactor)
        # Tenant-state stores exist before the registry: the built-in tools are built over them.
        limits = ScheduleLimits.from_settings(settings)
        # Limits are data (plans, overrides); the operator's schedule settings are the mode's defaults.
        plan_defaults = Limits.defaults(settings.mode).merged(
            {"cron_jobs": limits.max_cron_jobs, "heartbeat_tasks": limits.max_heartbeat_tasks}
        )
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
        try:
            prices = PriceTable.parse(settings.model_prices, settings.model_default_price)
        except ValueError as exc:
            raise ConfigurationError(f"TENANTGATE_MODEL_PRICES / TENANTGATE_MODEL_DEFAULT_PRICE: {exc}") from exc
        quotas = Quotas(
            plans=PlanStore(db=db, audit=audit, mode=settings.mode, defaults=plan_defaults),
            budgets=Budgets(db=db),
            rates=RateLimiter(redis_url, timeout_s=settings.quota_backend_timeout_s),
            auth_failures_per_address=settings.auth_failures_per_minute_per_address,
            auth_failures_per_prefix=settings.auth_failures_per_minute_per_prefix,
            prices=prices,
        )
        memory = MemoryStore(db=db, audit=audit)
        cron = CronStore(db=db, audit=audit, limits=limits, tenant_cap=quotas.cap("cron_jobs"))
        heartbeat = HeartbeatStore(db=db, audit=audit, limits=limits, tenant_cap=quotas.cap("heartbeat_tasks"))
        skills = SkillStore(db=db, audit=audit, prompt_max_chars=settings.skills_prompt_max_chars)
        if registry is None:
            registry = build_registry(settings, memory=memory, cron=cron, heartbeat=heartbeat, skills=skills)
        policies = PolicyStore(db=db, registry=registry, audit=audit)
        cache = PolicyCache(store=policies, listen_url=installation.app_url)
        confirmations = Confirmations(db=db, registry=registry, audit=audit, redactor=redactor)
        gate = Gate(registry=registry, policies=cache, quota=quota_hook(quotas.check_tool_call))
        outside = outside or Outside(policy=egress_policy(settings))
        http = http or EgressHttp(
            outside.policy,
            lists=tenant_domain_lists(cache),
            audit=audit,
            resolver=outside.resolver,
            dialer=outside.dialer,
        )
        if planner_http is None and (outside.resolver or outside.dialer):
            planner_http = PlannerHttp(policy=outside.policy, resolver=outside.resolver, dialer=outside.dialer)
        vault = Vault(db=db, provider=key_provider or key_provider_from_settings(settings), audit=audit)
        # Every secret the vault opens is redacted wherever it shows up again in this process.
        credentials = CredentialStore(db=db, vault=vault, audit=audit, known=redactor.known)
        artifacts = artifact_store(settings, db=db, audit=audit, pepper=installation.pepper)
        executor = Executor(
            registry=registry,
            resources=ToolResources(http=http, credentials=credentials, artifacts=tool_artifacts(artifacts, cache)),
            redactor=redactor,
        )
        # Directives: side effects recorded before they happen (see tenantgate.gate._directives).
        queue = (
            DirectiveQueue(
                installation.app_url,
                max_attempts=settings.directive_max_attempts,
                backoff_s=settings.directive_backoff_s,
            )
            if settings.directives == "queue"
            else None
        )
        directives = DirectiveRunner(
            store=DirectiveStore(db=db, audit=audit), executor=executor, registry=registry, mode=settings.mode,
            enqueue=queue.enqueue if queue is not None else None, max_attempts=settings.directive_max_attempts,
            redactor=redactor, switches=cache,
        )  # fmt: skip
        boundary = Boundary(
            gate=gate, executor=executor, confirmations=confirmations, audit=audit, directives=directives
        )
        signals = SignalBus(store=SignalStore(db=db, audit=audit, redactor=redactor), mode=settings.mode)
        webhooks = WebhookIngest(
            endpoints=WebhookEndpoints(db=db, credentials=credentials, audit=audit), signals=signals.store, audit=audit,
            mode=settings.mode, process=queue.enqueue_signal if queue is not None else signals.process_later,
        )  # fmt: skip
        runtime = AgentRuntime(
            db=db,
            audit=audit,
            boundary=boundary,
            registry=registry,
            policies=cache,
            planners=PlannerFactory(
                defaults=ProviderDefaults.from_settings(settings), http=planner_http, credentials=credentials
            ),
            redactor=redactor,
            skills=skills,
            limits=RuntimeLimits(step_limit=settings.agent_step_limit, time_limit_s=settings.agent_time_limit_s),
            quotas=quotas,
            resume_queue=queue.enqueue_resume if queue is not None else None,
        )
        # An approved or denied confirmation resumes the run held on it (the gate does not know runs).
        confirmations.listen(runtime.confirmation_decided)
        if "message@v1" not in registry:
            # The message tool delivers through the runtime's sessions, so it joins the registry here.
            tools, packages = message_tools(runtime)
            registry.register_available(tools)
            for package in packages:
                registry.add_package(package)
        # The WhatsApp channel answers verified inbound messages (it needs the runtime, so it joins here).
        principals = PrincipalService(db=db, audit=audit)
        WhatsAppChannel(
            db=db, runtime=runtime, boundary=boundary, directives=directives.store, audit=audit,
            endpoints=webhooks.endpoints, principals=principals,
        ).attach(signals)  # fmt: skip
        # Observers of the audit stream: metrics, and the anomaly rules that raise alerts.
        metrics = Metrics()
        alerts = alert_service(
            settings, db=db, audit=audit, http=http, credentials=credentials, policies=policies,
            pepper=installation.pepper, metrics=metrics,
        )  # fmt: skip
        if settings.metrics_enabled:
            audit.observe(metrics.observe)
        if settings.alerts_enabled:
            audit.observe(alerts.observe)

        platform_keys = PlatformKeys(db=db, pepper=installation.pepper, audit=audit)
        console_timeouts = ConsoleTimeouts(
            ttl=timedelta(seconds=settings.console_session_ttl_s),
            idle=timedelta(seconds=settings.console_idle_timeout_s),
        )
        return cls(
            settings=settings,
            db=db,
            authenticator=Authenticator(db=db, pepper=installation.pepper, mode=settings.mode, jwt=jwt, audit=audit),
            keys=KeyService(db=db, pepper=installation.pepper, audit=audit),
            principals=principals,
            tenants=TenantService(db=db, audit=audit),
            platform_keys=platform_keys,
            audit=audit,
            registry=registry,
            policies=policies,
            policy_cache=cache,
            confirmations=confirmations,
            boundary=boundary,
            http=http,
            redactor=redactor,
            vault=vault,
            credentials=credentials,
            runtime=runtime,
            memory=memory,
            cron=cron,
            heartbeat=heartbeat,
            skills=skills,
            directives=directives,
            queue=queue,
            signals=signals,
            webhooks=webhooks,
            schedules=ScheduleRunner(db=db, runtime=runtime, principals=principals, audit=audit, mode=settings.mode),
            quotas=quotas,
            artifacts=artifacts,
            retention=retention_job(settings, db=db, audit=audit, artifacts=artifacts),
            metrics=metrics,
            queue_sampler=QueueSampler(db=db, metrics=metrics, cache_s=settings.metrics_queue_cache_s),
            alerts=alerts,
            passwords=PasswordService(db=db, audit=audit),
            console=ConsoleAuth(
                db=db,
                pepper=installation.pepper,
                audit=audit,
                platform_keys=platform_keys,
                mode=settings.mode,
                timeouts=console_timeouts,
            ),
            purges=PurgeService(
                db=db,
                audit=audit,
                vault=vault,
                artifacts=artifacts,
                mode=settings.mode,
                grace=timedelta(seconds=settings.purge_grace_s),
                batch_rows=settings.purge_batch_rows,
            ),
        )

    async def start(self) -> None:
        """Start what runs in the background (the policy listener). Call on the serving loop."""
        await self.policy_cache.start()
        self.runtime.start()
        if self.settings.metrics_tenant_labels:
            tenants = self.tenants

            async def known() -> list[tuple[uuid.UUID, str]]:
                return [(tenant.id, tenant.name) for tenant in await tenants.list()]

            self.metrics.label_tenants(await tenant_labels(self.settings.metrics_tenant_labels, known))

    async def stop(self) -> None:
        await self.policy_cache.stop()
        await self.runtime.stop()
        await self.signals.drain()
        if self.queue is not None:
            await self.queue.close()
        await self.quotas.rates.close()
        await self.alerts.close()
        await self.audit.drain()  # access events still in flight are written, not dropped
        await self.db.dispose()
