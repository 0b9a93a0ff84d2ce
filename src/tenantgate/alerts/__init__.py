"""Anomaly detection over the audited stream of decisions and events, alerts, and their notifications.

Rules (``Rule``) count audited events per tenant and subject in fixed windows; a window
that reaches its threshold raises exactly one alert (unique per tenant, rule, subject and
window start), optionally responds (pause the tenant's AI, revoke a key: off by default),
and notifies the configured sinks (the log; a Standard Webhooks-signed POST through the
egress door). Thresholds, responses and sinks are per tenant (``AlertSettings``).
"""

from tenantgate.alerts._detector import WindowCounter, window_start
from tenantgate.alerts._notify import ClientFor, Notifier, SecretFor, WebhookPolicy, alert_body
from tenantgate.alerts._rules import DEFAULTS, AlertSettings, Response, Rule, RuleOverride, RuleSettings, Severity
from tenantgate.alerts._service import Alerts, Responses
from tenantgate.alerts._store import MAX_ALERTS_PAGE, AlertInfo, AlertStore, Finding

__all__ = [
    "DEFAULTS",
    "MAX_ALERTS_PAGE",
    "AlertInfo",
    "AlertSettings",
    "AlertStore",
    "Alerts",
    "ClientFor",
    "Finding",
    "Notifier",
    "Response",
    "Responses",
    "Rule",
    "RuleOverride",
    "RuleSettings",
    "SecretFor",
    "Severity",
    "WebhookPolicy",
    "WindowCounter",
    "alert_body",
    "window_start",
]
