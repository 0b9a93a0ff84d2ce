"""Channels: inbound conversations from outside (WhatsApp) turned into agent turns and replies."""

from tenantgate.channels._whatsapp import SEND_TOOL, WhatsAppChannel

__all__ = ["SEND_TOOL", "WhatsAppChannel"]
