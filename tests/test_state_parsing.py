"""Parsing without a database: schedules (at / every / cron, time zones, gaps), limits, skill documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import InvalidInput
from tenantgate.schedules import Schedule, ScheduleKind, ScheduleLimits
from tenantgate.skills import parse_skill

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)  # the day before Europe's spring DST change

SKILL = """---
name: weekly-report
description: How to write the weekly status report.
metadata:
  audience: team
  sections: [wins, risks]
---
# Weekly report

List wins first, then risks.
"""


def test_at_is_one_aware_instant_stored_in_utc() -> None:
    schedule = Schedule.parse("at", "2030-01-31T09:00:00+01:00")
    assert schedule.spec == "2030-01-31T08:00:00+00:00"
    assert schedule.next_run(NOW) == datetime(2030, 1, 31, 8, tzinfo=UTC)
    assert schedule.next_run(datetime(2031, 1, 1, tzinfo=UTC)) is None
    assert schedule.shortest_gap(NOW) is None


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("at", "2030-01-31T09:00:00", "has no offset"),
        ("at", "next tuesday", "ISO 8601"),
        ("every", "0", "whole number of seconds"),
        ("every", "1.5", "whole number of seconds"),
        ("every", str(10**9), "whole number of seconds"),
        ("cron", "*/5 * * *", "five fields"),
        ("cron", "0 0 * * * *", "five fields"),
        ("cron", "61 * * * *", "not valid"),
        ("cron", "0 0 30 2 *", "never runs"),
        ("hourly", "1", "use 'at', 'every' or 'cron'"),
    ],
)
def test_bad_schedules_are_refused_with_what_to_change(kind: str, value: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Schedule.parse(kind, value)


@pytest.mark.parametrize("zone", ["Mars/Olympus", "../../etc/passwd", "/etc/localtime", ""])
def test_unknown_or_path_like_time_zones_are_refused(zone: str) -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        Schedule.parse("cron", "0 9 * * *", zone)


def test_cron_runs_in_its_zone_across_daylight_saving() -> None:
    schedule = Schedule.parse(ScheduleKind.CRON, "0  9 * * *", "Europe/Berlin")
    assert schedule.spec == "0 9 * * *"
    first = schedule.next_run(NOW)
    second = schedule.next_run(first + timedelta(seconds=1)) if first else None
    assert first == datetime(2026, 3, 29, 7, tzinfo=UTC)  # 09:00 CEST (UTC+2), after the change
    assert second == datetime(2026, 3, 30, 7, tzinfo=UTC)
    assert Schedule.parse("cron", "0 9 * * *", "UTC").next_run(NOW) == datetime(2026, 3, 29, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "gap"),
    [("*/5 * * * *", 300), ("0,1 * * * *", 60), ("0 9,17 * * 1-5", 8 * 3600), ("@daily", 86400), ("* * * * *", 60)],
)
def test_shortest_gap_of_a_cron_expression(expression: str, gap: float) -> None:
    assert Schedule.parse("cron", expression).shortest_gap(NOW) == gap


def test_every_runs_one_interval_later() -> None:
    schedule = Schedule.parse("every", 3600)
    assert schedule.next_run(NOW) == NOW + timedelta(hours=1)
    assert schedule.shortest_gap(NOW) == 3600


def test_limits_are_conservative_in_saas_generous_in_self_hosted_and_overridable() -> None:
    saas = ScheduleLimits.defaults(DeploymentMode.SAAS)
    hosted = ScheduleLimits.defaults(DeploymentMode.SELF_HOSTED)
    assert saas.max_cron_jobs < hosted.max_cron_jobs
    assert saas.min_cron_interval_seconds > hosted.min_cron_interval_seconds
    assert saas.min_heartbeat_interval_seconds > hosted.min_heartbeat_interval_seconds
    settings = Settings(_env_file=None, cron_max_jobs=3, heartbeat_min_interval_seconds=120)  # type: ignore[call-arg]
    limits = ScheduleLimits.from_settings(settings)
    assert (limits.max_cron_jobs, limits.min_heartbeat_interval_seconds) == (3, 120)
    assert limits.min_cron_interval_seconds == saas.min_cron_interval_seconds


def test_a_skill_parses_into_front_matter_and_body() -> None:
    doc = parse_skill(SKILL)
    assert (doc.name, doc.description) == ("weekly-report", "How to write the weekly status report.")
    assert doc.metadata == {"audience": "team", "sections": ["wins", "risks"]}
    assert doc.body == "# Weekly report\n\nList wins first, then risks."


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("# no front matter\n", "starts with YAML front matter"),
        ("---\nname: x\ndescription: y\n# never closed\n", "not closed"),
        ("---\nname: [unclosed\n---\nbody\n", "not valid YAML at line"),
        ("---\n- a\n- b\n---\nbody\n", "must be a mapping"),
        ("---\ndescription: no name\n---\nbody\n", "name: Field required"),
        ("---\nname: Bad Name\ndescription: d\n---\nbody\n", "name: String should match"),
        ("---\nname: ok\ndescription: d\nauthor: me\n---\nbody\n", "author: Extra inputs"),
        ("---\nname: ok\ndescription: d\nmetadata: {when: 2026-01-01}\n---\nbody\n", "metadata.when"),
        ("---\nname: ok\ndescription: d\n---\n\n   \n", "no body"),
        ("---\nname: ok\ndescription: &d d\nmetadata: {x: *d}\n---\nbody\n", "anchors, aliases or tags"),
        ("---\nname: !!python/name:os.system ok\ndescription: d\n---\nbody\n", "anchors, aliases or tags"),
        ("", "empty"),
        ("---\nname: ok\ndescription: d\n---\n" + "x" * 40_000, "at most"),
    ],
)
def test_bad_skills_are_refused_with_a_clear_message(source: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_skill(source)
