"""Channels: what starts agent turns besides the HTTP API: WhatsApp messages, cron jobs, heartbeats."""

from tenantgate.channels._schedules import ScheduleRun, ScheduleRunner
from tenantgate.channels._whatsapp import REPLY_TOOL, SEND_TOOL, WhatsAppChannel

__all__ = ["REPLY_TOOL", "SEND_TOOL", "ScheduleRun", "ScheduleRunner", "WhatsAppChannel"]
