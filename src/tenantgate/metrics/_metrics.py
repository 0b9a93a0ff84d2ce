"""Prometheus metrics for one process, in its own registry (no global state; tests build many).

Most series are fed by the audit stream (:meth:`Metrics.observe`, an audit observer):
gate decisions, tool executions and their latency, quota denials, audit append latency.
The HTTP edge counts requests by route template (never the raw path), the webhook route
counts verifications. Tool names come from the registry (unknown names a planner invents
are never a label), so every label set is bounded; the ``tenant`` label is set only for
the tenants ``TENANTGATE_METRICS_TENANT_LABELS`` names and is empty otherwise, which
Prometheus treats as no label at all.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from tenantgate.audit import AuditRecord

__all__ = ["CONTENT_TYPE", "Metrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
_KIND = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_TOOL = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self, *, tenant_labels: Mapping[uuid.UUID, str] | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._tenants: dict[uuid.UUID, str] = dict(tenant_labels or {})
        r = self.registry
        self.http_requests = Counter(
            "tenantgate_http_requests", "HTTP requests by method, route template and status.",
            ["method", "route", "status"], registry=r,
        )  # fmt: skip
        self.http_seconds = Histogram(
            "tenantgate_http_request_duration_seconds", "HTTP request latency by route template.",
            ["method", "route"], buckets=_TOOL, registry=r,
        )  # fmt: skip
        self.decisions = Counter(
            "tenantgate_gate_decisions", "Gate decisions by effect (allow, deny, confirm) and code.",
            ["effect", "code", "tenant"], registry=r,
        )  # fmt: skip
        self.tool_executions = Counter(
            "tenantgate_tool_executions", "Tool executions by tool and outcome.",
            ["tool", "outcome", "tenant"], registry=r,
        )  # fmt: skip
        self.tool_seconds = Histogram(
            "tenantgate_tool_duration_seconds", "Tool execution latency by tool.", ["tool"], buckets=_TOOL, registry=r
        )
        self.quota_denials = Counter(
            "tenantgate_quota_denials", "Tool calls refused by a quota, by the limit (counter kind) that refused.",
            ["kind", "tenant"], registry=r,
        )  # fmt: skip
        self.webhook_verifications = Counter(
            "tenantgate_webhook_verifications", "Inbound webhook deliveries by provider and result.",
            ["provider", "result"], registry=r,
        )  # fmt: skip
        self.audit_seconds = Histogram(
            "tenantgate_audit_append_seconds", "Time from an audit event's creation to its commit.",
            buckets=_FAST, registry=r,
        )  # fmt: skip
        self.alerts = Counter(
            "tenantgate_alerts", "Alerts raised by rule and severity.", ["rule", "severity", "tenant"], registry=r
        )
        self.queue_depth = Gauge(
            "tenantgate_directive_queue_depth", "Directives requested or running (all tenants).", registry=r
        )
        self.queue_oldest = Gauge(
            "tenantgate_directive_queue_oldest_age_seconds", "Age of the oldest open directive (0 when none).",
            registry=r,
        )  # fmt: skip

    # --- tenants -----------------------------------------------------------------------------

    def label_tenants(self, labels: Mapping[uuid.UUID, str]) -> None:
        """The tenants to label, by id, with their label text (the configured name or id)."""
        self._tenants = dict(labels)

    def tenant(self, tenant_id: uuid.UUID) -> str:
        return self._tenants.get(tenant_id, "")

    # --- feeds -------------------------------------------------------------------------------

    async def observe(self, record: AuditRecord) -> None:
        """The audit observer: count what the record says, by bounded labels."""
        action = record.action
        if action == "gate.decided":
            tenant = self.tenant(record.tenant_id)
            self.decisions.labels(record.decision or "unknown", record.code or "unknown", tenant).inc()
            if record.code == "quota_exceeded":
                self.quota_denials.labels(_quota_kind(record), tenant).inc()
        elif action == "tool.executed" and record.tool is not None:
            self.tool_executions.labels(record.tool, record.decision or "unknown", self.tenant(record.tenant_id)).inc()
            duration = record.payload.get("duration_ms") if record.payload is not None else None
            if isinstance(duration, int | float) and duration >= 0:
                self.tool_seconds.labels(record.tool).observe(duration / 1000)
        elapsed = time.time() - record.occurred_at.astimezone(UTC).timestamp()
        if 0 <= elapsed < 3600:  # an injected audit clock (tests) is not a latency
            self.audit_seconds.observe(elapsed)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.http_requests.labels(method, route, str(status)).inc()
        self.http_seconds.labels(method, route).observe(seconds)

    def webhook_verification(self, provider: str, result: str) -> None:
        known = provider if provider in ("standard", "stripe", "whatsapp") else "other"
        self.webhook_verifications.labels(known, result).inc()

    def alert_raised(self, tenant_id: uuid.UUID, rule: str, severity: str) -> None:
        self.alerts.labels(rule, severity, self.tenant(tenant_id)).inc()

    def queue(self, depth: int, oldest: datetime | None) -> None:
        self.queue_depth.set(depth)
        self.queue_oldest.set(max(0.0, (datetime.now(UTC) - oldest).total_seconds()) if oldest is not None else 0.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _quota_kind(record: AuditRecord) -> str:
    details = record.payload.get("details") if record.payload is not None else None
    if isinstance(details, list | tuple) and details and isinstance(details[0], Mapping):
        kind = details[0].get("limit")
        if isinstance(kind, str) and _KIND.fullmatch(kind):
            return kind
    return "other"
