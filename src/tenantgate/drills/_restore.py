"""The restore drill: back up the database, restore it into a scratch database, prove the copy.

Steps, each reported pass/fail/skipped:

1. find pg_dump/pg_restore for the server's version;
2. back up with ``pg_dump -Fc`` inside a REPEATABLE READ snapshot, counting every tenant
   table's rows per tenant in that same snapshot (so live traffic cannot skew the comparison);
3. create a scratch database on the same server; 4. ``pg_restore`` into it;
5. row counts per tenant of every tenant-owned table (from the catalog) equal the snapshot's;
6. every credential of the tenant(s) opens against the restored database (vault and key provider);
7. the audit chain(s) verify on the restored database;
8. drop the scratch database (always attempted).

The maintenance URL needs a role that reads every row (superuser or BYPASSRLS) and may create
and drop databases.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from tenantgate.audit import PLATFORM_CHAIN, AuditLog
from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.drills._binaries import PgTools, find_pg_tools
from tenantgate.errors import TenantgateError
from tenantgate.logs import get_logger
from tenantgate.store import Database, RoleNames, tables
from tenantgate.vault import KeyProvider, Vault

__all__ = ["DrillReport", "DrillStep", "RestoreDrill"]

_log = get_logger("tenantgate.drill")
Status = Literal["pass", "fail", "skipped"]
AfterRestore = Callable[[str], Awaitable[None]]  # gets the scratch database's maintenance URL

_TENANT_TABLES = """
    SELECT c.table_name FROM information_schema.columns c
      JOIN information_schema.tables t
        ON t.table_schema = c.table_schema AND t.table_name = c.table_name AND t.table_type = 'BASE TABLE'
     WHERE c.table_schema = %s AND c.column_name = 'tenant_id' ORDER BY 1
"""


@dataclass(frozen=True, slots=True)
class DrillStep:
    name: str
    status: Status
    detail: str = ""


@dataclass(slots=True)
class DrillReport:
    steps: list[DrillStep] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(s.status == "pass" for s in self.steps)

    def add(self, name: str, ok: bool, detail: str = "") -> bool:
        self.steps.append(DrillStep(name, "pass" if ok else "fail", detail))
        return ok

    def skip(self, *names: str) -> None:
        self.steps.extend(DrillStep(n, "skipped", "an earlier step failed") for n in names)


def _with_db(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _tool_args(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its password (kept out of the process list), and the env that carries it."""
    parsed = make_url(url)
    env = {**os.environ}
    if parsed.password is not None:
        env["PGPASSWORD"] = str(parsed.password)
    return parsed.set(password=None, drivername="postgresql").render_as_string(hide_password=False), env


async def _exec(*args: str, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await proc.communicate()
    return proc.returncode or 0, stderr.decode("utf-8", "replace").strip()


Counts = dict[tuple[str, uuid.UUID], int]


async def _count(conn: psycopg.AsyncConnection[tuple[object, ...]], tenants: list[uuid.UUID]) -> Counts:
    counts: Counts = {}
    schema = tables.SCHEMA
    names = [str(r[0]) for r in await (await conn.execute(_TENANT_TABLES, [schema])).fetchall()]
    for name, column in [*((n, "tenant_id") for n in names), ("tenants", "id")]:
        query = sql.SQL("SELECT {c}, count(*) FROM {s}.{t} WHERE {c} = ANY(%s) GROUP BY 1").format(
            c=sql.Identifier(column), s=sql.Identifier(schema), t=sql.Identifier(name)
        )
        found = {row[0]: int(str(row[1])) for row in await (await conn.execute(query, [tenants])).fetchall()}
        for tenant in tenants:
            counts[(name, tenant)] = found.get(tenant, 0)
    return counts


class RestoreDrill:
    """One drill over an installation's database (``database`` on the maintenance URL's server)."""

    def __init__(
        self,
        *,
        maintenance_url: str,
        database: str,
        app_url: str,
        admin_url: str,
        roles: RoleNames,
        key_provider: KeyProvider,
        bin_dirs: list[Path | None],
    ) -> None:
        self._maintenance, self._database = maintenance_url, database
        self._app_url, self._admin_url, self._roles = app_url, admin_url, roles
        self._provider, self._bin_dirs = key_provider, bin_dirs

    async def run(
        self, *, tenant_id: uuid.UUID | None = None, after_restore: AfterRestore | None = None
    ) -> DrillReport:
        report = DrillReport()
        live_url = _with_db(self._maintenance, self._database)
        async with await psycopg.AsyncConnection.connect(live_url) as live:
            server_major = (live.info.server_version or 0) // 10000
            tenants = await self._tenants(live, tenant_id)
        try:
            tools = find_pg_tools(server_major, candidates=self._bin_dirs)
        except TenantgateError as exc:
            report.add("client tools", False, exc.message)
            report.skip("backup", "scratch database", "restore", "row counts", "credentials", "audit chains")
            return report
        report.add("client tools", True, f"{tools.pg_dump} (PostgreSQL {tools.major}; server {server_major})")
        if not tenants:
            report.add("tenants", False, f"no tenant with id {tenant_id}")
            return report
        scratch = f"tgdrill_{uuid.uuid4().hex[:12]}"
        with tempfile.TemporaryDirectory(prefix="tenantgate-drill-") as tmp:
            dump = Path(tmp) / "backup.dump"
            try:
                await self._steps(report, tools, live_url, dump, scratch, tenants, tenant_id, after_restore)
            except (psycopg.Error, TenantgateError, OSError) as exc:  # a step that could not even run fails
                report.add("unexpected error", False, f"{type(exc).__name__}: {exc}")
            finally:
                report.add(*await self._drop(scratch))
        _log.info("drill.restore", ok=report.ok, steps={s.name: s.status for s in report.steps})
        return report

    async def _tenants(
        self, live: psycopg.AsyncConnection[tuple[object, ...]], tenant_id: uuid.UUID | None
    ) -> list[uuid.UUID]:
        query = sql.SQL("SELECT id FROM {}.tenants ORDER BY created_at").format(sql.Identifier(tables.SCHEMA))
        ids = [uuid.UUID(str(r[0])) for r in await (await live.execute(query)).fetchall()]
        return [t for t in ids if tenant_id is None or t == tenant_id]

    async def _steps(
        self,
        report: DrillReport,
        tools: PgTools,
        live_url: str,
        dump: Path,
        scratch: str,
        tenants: list[uuid.UUID],
        tenant_id: uuid.UUID | None,
        after_restore: AfterRestore | None,
    ) -> None:
        rest = ["scratch database", "restore", "row counts", "credentials", "audit chains"]
        # The backup and the live counts share one snapshot.
        async with await psycopg.AsyncConnection.connect(live_url) as live:
            await live.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            snapshot = str((await (await live.execute("SELECT pg_export_snapshot()")).fetchone() or [""])[0])
            target, env = _tool_args(live_url)
            code, stderr = await _exec(
                str(tools.pg_dump), "--format=custom", f"--snapshot={snapshot}", f"--file={dump}",
                f"--dbname={target}", env=env,
            )  # fmt: skip
            if code != 0:
                report.add("backup", False, stderr[-500:])
                report.skip(*rest)
                return
            live_counts = await _count(live, tenants)
            await live.execute("COMMIT")
        size = (await asyncio.to_thread(dump.stat)).st_size
        report.add("backup", True, f"pg_dump --format=custom, {size} bytes")
        try:
            async with await psycopg.AsyncConnection.connect(self._maintenance, autocommit=True) as admin:
                await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
        except psycopg.Error as exc:
            report.add("scratch database", False, f"CREATE DATABASE {scratch}: {exc}")
            report.skip(*rest[1:])
            return
        report.add("scratch database", True, scratch)
        scratch_url = _with_db(self._maintenance, scratch)
        target, env = _tool_args(scratch_url)
        code, stderr = await _exec(str(tools.pg_restore), "--exit-on-error", f"--dbname={target}", str(dump), env=env)
        if not report.add("restore", code == 0, "pg_restore into the scratch database" if code == 0 else stderr[-500:]):
            report.skip(*rest[2:])
            return
        if after_restore is not None:
            await after_restore(scratch_url)
        async with await psycopg.AsyncConnection.connect(scratch_url) as restored:
            restored_counts = await _count(restored, tenants)
        diffs = [
            f"{table} of {tenant}: {n} live, {restored_counts.get((table, tenant))} restored"
            for (table, tenant), n in sorted(live_counts.items(), key=str)
            if restored_counts.get((table, tenant)) != n
        ]
        tables_seen = len({table for table, _ in live_counts})
        rows = sum(live_counts.values())
        report.add("row counts", not diffs, "; ".join(diffs[:5]) or f"{tables_seen} tables, {rows} rows, equal")
        db = Database(
            app_url=_with_db(self._app_url, scratch), admin_url=_with_db(self._admin_url, scratch),
            roles=self._roles, pool_size=2,
        )  # fmt: skip
        try:
            report.add(*await self._credentials(db, tenants))
            report.add(*await self._chains(db, tenants, whole=tenant_id is None))
        finally:
            await db.dispose()

    async def _credentials(self, db: Database, tenants: list[uuid.UUID]) -> tuple[str, bool, str]:
        vault = Vault(db=db, provider=self._provider, audit=AuditLog(db=db))
        opened, failed = 0, []
        c = tables.credentials
        for tenant in tenants:
            ctx = system_context(tenant, mode=DeploymentMode.SAAS, request_id="drill")
            async with db.tenant(ctx) as conn:
                rows = (await conn.execute(c.select().where(c.c.tenant_id == tenant))).all()
                for row in rows:
                    try:
                        await vault.open(conn, ctx, row.id, row.sealed)
                        opened += 1
                    except TenantgateError as exc:
                        failed.append(f"{tenant}/{row.id}: {exc.code}")
        detail = "; ".join(failed[:5]) if failed else f"{opened} credentials of {len(tenants)} tenants open"
        return "credentials", not failed, detail

    async def _chains(self, db: Database, tenants: list[uuid.UUID], *, whole: bool) -> tuple[str, bool, str]:
        audit = AuditLog(db=db)
        chains = [PLATFORM_CHAIN, *tenants] if whole else tenants
        broken, events = [], 0
        for chain in chains:
            verdict = await audit.verify(chain)
            events += verdict.events_checked
            if not verdict.ok:
                broken.append(f"{chain} broken at seq {verdict.first_broken_seq}: {verdict.reason}")
        detail = "; ".join(broken[:5]) if broken else f"{len(chains)} chains, {events} events verify"
        return "audit chains", not broken, detail

    async def _drop(self, scratch: str) -> tuple[str, bool, str]:
        try:
            async with await psycopg.AsyncConnection.connect(self._maintenance, autocommit=True) as admin:
                await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))
        except psycopg.Error as exc:
            return "scratch database dropped", False, f"{scratch}: {exc}"
        return "scratch database dropped", True, scratch
