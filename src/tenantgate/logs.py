"""JSON logs with structlog. Request and tenant ids ride on contextvars for enrichment only."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Protocol, TextIO

import structlog

__all__ = ["LogRedactor", "bind_request", "configure_logging", "get_logger"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class LogRedactor(Protocol):
    """What logging needs of a redactor (``tenantgate.redact.Redactor``): a structlog processor."""

    def process_log(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]: ...


def configure_logging(
    level: str = "info", *, stream: TextIO | None = None, redactor: LogRedactor | None = None
) -> None:
    """One JSON object per line on ``stream`` (stderr by default).

    With ``redactor`` (the installation's; the edges always pass it), every event is
    redacted after exceptions are formatted and before it is rendered, so no secret in
    a value, a message or a traceback reaches the stream.
    """
    redact: list[structlog.typing.Processor] = [redactor.process_log] if redactor is not None else []
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            *redact,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger


def bind_request(**ids: str | None) -> None:
    """Attach ids (request_id, tenant_id, principal_id) to every log line of this request."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in ids.items() if v is not None})
