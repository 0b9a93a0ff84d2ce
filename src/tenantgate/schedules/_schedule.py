"""When a job runs: one time (``at``), on an interval (``every``) or by a cron expression, in a time zone.

A :class:`Schedule` is parsed and validated once, when a definition is written; the same
object computes the next run and the shortest gap between runs (what the saas limits
bound). Times are stored in UTC; cron expressions are evaluated in the job's zone, so
``0 9 * * 1-5`` in ``Europe/Berlin`` follows daylight saving time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

from tenantgate.errors import InvalidInput

__all__ = ["MAX_EVERY_SECONDS", "Schedule", "ScheduleKind"]

MAX_EVERY_SECONDS = 366 * 24 * 3600
_MAX_SPEC_CHARS = 200
# How many upcoming runs are inspected for the shortest gap. Every cron field repeats
# within a year, and the shortest gap of a pattern shows within its first matching hour
# (minutes) or day (hours); 500 runs cover both for any pattern that can run often.
_GAP_SAMPLE = 500
_MACROS = frozenset({"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"})


class ScheduleKind(StrEnum):
    AT = "at"  # one time: an aware ISO 8601 time
    EVERY = "every"  # an interval in seconds
    CRON = "cron"  # a five-field cron expression (or @daily, @hourly, ...)


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not 1 <= len(name) <= 64 or name.startswith(("/", ".")) or ".." in name:
        raise InvalidInput(f"Unknown time zone {name!r}: use an IANA name like 'UTC' or 'Europe/Berlin'.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"Unknown time zone {name!r}: use an IANA name like 'UTC' or 'Europe/Berlin'.") from exc


@dataclass(frozen=True, slots=True)
class Schedule:
    """A validated schedule. ``spec`` is canonical: a UTC ISO time, a number of seconds, or the expression."""

    kind: ScheduleKind
    spec: str
    timezone: str = "UTC"

    @classmethod
    def parse(cls, kind: ScheduleKind | str, value: str | int, timezone: str = "UTC") -> Schedule:
        """Validate ``value`` for ``kind``; raise :class:`InvalidInput` saying what is wrong."""
        try:
            kind = ScheduleKind(kind)
        except ValueError as exc:
            raise InvalidInput(f"Schedule kind {kind!r}: use 'at', 'every' or 'cron'.") from exc
        zone = _zone(timezone)
        text = str(value).strip()
        if not text or len(text) > _MAX_SPEC_CHARS:
            raise InvalidInput(f"The {kind.value} schedule must be 1 to {_MAX_SPEC_CHARS} characters.")
        if kind is ScheduleKind.AT:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError as exc:
                raise InvalidInput(
                    f"'at' needs an ISO 8601 time like 2030-01-31T09:00:00+01:00, not {text!r}."
                ) from exc
            if moment.tzinfo is None:
                raise InvalidInput(
                    f"'at' time {text!r} has no offset: add one (+00:00, Z) so it means one instant everywhere."
                )
            return cls(kind, moment.astimezone(UTC).isoformat(), timezone)
        if kind is ScheduleKind.EVERY:
            if not text.isdigit() or not 1 <= int(text) <= MAX_EVERY_SECONDS:
                raise InvalidInput(f"'every' is a whole number of seconds from 1 to {MAX_EVERY_SECONDS}, not {text!r}.")
            return cls(kind, str(int(text)), timezone)
        expression = " ".join(text.split())
        if expression.lower() not in _MACROS and len(expression.split(" ")) != 5:
            raise InvalidInput(
                f"Cron expression {expression!r}: use five fields (minute hour day month weekday), "
                "like '0 9 * * 1-5', or @hourly, @daily, @weekly, @monthly, @yearly."
            )
        schedule = cls(kind, expression, timezone)
        try:
            croniter(expression, datetime.now(zone))
            if schedule.next_run(datetime.now(UTC)) is None:
                raise CroniterBadDateError("no next run")
        except CroniterBadDateError as exc:
            raise InvalidInput(f"Cron expression {expression!r} never runs (check day and month).") from exc
        except (CroniterBadCronError, CroniterError, ValueError, KeyError) as exc:
            raise InvalidInput(f"Cron expression {expression!r} is not valid: {exc}") from exc
        return schedule

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def next_run(self, after: datetime) -> datetime | None:
        """The first run strictly after ``after`` (aware), in UTC; None once a one-time job has passed."""
        if after.tzinfo is None:
            raise ValueError("next_run needs an aware datetime")
        if self.kind is ScheduleKind.AT:
            moment = datetime.fromisoformat(self.spec)
            return moment if moment > after else None
        if self.kind is ScheduleKind.EVERY:
            return (after + timedelta(seconds=int(self.spec))).astimezone(UTC)
        nxt = croniter(self.spec, after.astimezone(self.zone)).get_next(datetime)
        assert isinstance(nxt, datetime)
        return nxt.astimezone(UTC)

    def shortest_gap(self, start: datetime) -> float | None:
        """The shortest time between two runs, in seconds; None for a one-time job."""
        if self.kind is ScheduleKind.AT:
            return None
        if self.kind is ScheduleKind.EVERY:
            return float(self.spec)
        runs = croniter(self.spec, start.astimezone(self.zone))
        previous = runs.get_next(datetime)
        gap = float("inf")
        for _ in range(_GAP_SAMPLE):
            current = runs.get_next(datetime)
            gap = min(gap, (current - previous).total_seconds())
            previous = current
            if gap <= 60:  # a cron expression cannot run more often than once a minute
                break
        return gap

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind.value, "schedule": self.spec, "timezone": self.timezone}
