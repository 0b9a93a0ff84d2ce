"""The OSV API's ``POST /v1/query``, as osv.dev answers it.

pip-audit 2.10's OSV service sends one ``POST /v1/query`` per dependency (never ``/v1/querybatch``) and
reads full OSV records back: ``{"vulns": [...]}``, or ``{}`` when a version has none. The fake holds
advisories in the OSV schema and matches versions the way OSV does for the PyPI ecosystem: ``ECOSYSTEM``
range events and listed versions. Anything else is answered 404 or 400 in OSV's error shape.
"""

from __future__ import annotations

import re
from typing import Any

from packaging.version import InvalidVersion, Version

from tests.fakes.server import FakeServer, Reply, Request

# Jinja2's sandbox breakout through a template filename, fixed in 3.1.5. Written for these tests from
# the published advisory's facts (id, alias, affected range, fix); not a copy of the osv.dev record.
JINJA2_FILENAME_BREAKOUT: dict[str, Any] = {
    "schema_version": "1.6.0",
    "id": "GHSA-q2x7-8rv6-6q7h",
    "modified": "2024-12-23T19:30:00Z",
    "published": "2024-12-23T17:58:00Z",
    "aliases": ["CVE-2024-56201"],
    "summary": "Jinja has a sandbox breakout through malicious filenames",
    "details": (
        "A bug in the Jinja compiler allows an attacker that controls both the content and the filename of a "
        "template to execute arbitrary Python code, regardless of whether Jinja's sandbox is used."
    ),
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "jinja2", "purl": "pkg:pypi/jinja2"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "3.0.0"}, {"fixed": "3.1.5"}]}],
        }
    ],
    "references": [
        {"type": "WEB", "url": "https://github.com/pallets/jinja/security/advisories/GHSA-q2x7-8rv6-6q7h"},
        {"type": "PACKAGE", "url": "https://github.com/pallets/jinja"},
    ],
    "database_specific": {"github_reviewed": True},
}


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _in_range(version: Version, events: list[dict[str, str]]) -> bool:
    """OSV's ECOSYSTEM range: affected from each ``introduced`` up to a ``fixed`` (excluded) or ``last_affected``."""
    affected = False
    for kind, bound in sorted((next(iter(event.items())) for event in events), key=lambda kb: Version(kb[1])):
        at = Version(bound)  # "introduced": "0" is the beginning of time, and a valid version
        if kind == "introduced" and version >= at:
            affected = True
        elif (kind == "fixed" and version >= at) or (kind == "last_affected" and version > at):
            affected = False
    return affected


def _affects(record: dict[str, Any], name: str, version: Version) -> bool:
    for affected in record["affected"]:
        package = affected["package"]
        if package["ecosystem"] != "PyPI" or _normalized(package["name"]) != name:
            continue
        if str(version) in affected.get("versions", []):
            return True
        ranges = (r for r in affected.get("ranges", []) if r["type"] == "ECOSYSTEM")
        if any(_in_range(version, r["events"]) for r in ranges):
            return True
    return False


def _error(status: int, code: int, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})  # gRPC-gateway's error shape, as osv.dev sends it


class FakeOsv:
    def __init__(self, *advisories: dict[str, Any]) -> None:
        self.server = FakeServer(self.handle)
        self.advisories = list(advisories)

    @property
    def query_url(self) -> str:
        return f"{self.server.base('127.0.0.1')}/v1/query"

    def queried(self) -> dict[str, str]:
        """Package name -> version, for every ``/v1/query`` that arrived."""
        return {
            body["package"]["name"]: body["version"]
            for body in (r.json() for r in self.server.arrivals if r.path == "/v1/query")
        }

    async def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path != "/v1/query":
            return _error(404, 5, "Not Found")
        try:
            query = request.json()
            package = query["package"]
            name, version = _normalized(package["name"]), Version(query["version"])
        except (ValueError, KeyError, TypeError, InvalidVersion):
            return _error(400, 3, "Invalid query.")
        if package.get("ecosystem") != "PyPI":
            return Reply(200, {})
        matches = [record for record in self.advisories if _affects(record, name, version)]
        return Reply(200, {"vulns": matches} if matches else {})
