"""Operational drills: prove the restore playbook on a scratch database."""

from tenantgate.drills._binaries import PgTools, embedded_bin_dir, find_pg_tools
from tenantgate.drills._restore import DrillReport, DrillStep, RestoreDrill

__all__ = ["DrillReport", "DrillStep", "PgTools", "RestoreDrill", "embedded_bin_dir", "find_pg_tools"]
