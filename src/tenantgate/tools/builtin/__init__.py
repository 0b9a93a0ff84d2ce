"""The built-in tools of both modes, one module per tool family, and the packages tenants install.

Each ``_family.py`` module exports a factory that builds its tools (and packages) from the
services they need; the installation registers them for the deployment mode, so tools that
need a local capability exist only in ``self_hosted``.
"""

from tenantgate.tools.builtin._message import MESSAGE_PACKAGE, MessageArgs, MessageSent, Outbox, message_tools

__all__ = ["MESSAGE_PACKAGE", "MessageArgs", "MessageSent", "Outbox", "message_tools"]
