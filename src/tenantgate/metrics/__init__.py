"""Prometheus metrics: one registry per process, fed by the audit stream and the HTTP edge."""

from tenantgate.metrics._metrics import CONTENT_TYPE, Metrics
from tenantgate.metrics._sampled import QueueSampler, tenant_labels

__all__ = ["CONTENT_TYPE", "Metrics", "QueueSampler", "tenant_labels"]
