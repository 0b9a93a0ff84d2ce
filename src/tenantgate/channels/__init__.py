"""Channels: what starts agent turns besides the HTTP API: WhatsApp messages, cron jobs, heartbeats."""

from tenantgate.channels._schedules import ScheduleRun, ScheduleRunner
from tenantgate.channels._whatsapp import SEND_TOOL, WhatsAppChannel

__all__ = ["SEND_TOOL", "ScheduleRun", "ScheduleRunner", "WhatsAppChannel"]
