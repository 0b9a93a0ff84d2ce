"""The dependency vulnerability audit: pip-audit over the locked dependency set, against an OSV service.

    .venv/bin/python .ci/audit.py [--lock LOCK] [--accepted FILE]   # requirements/test-lock.txt, security/...
    .venv/bin/python .ci/audit.py --probe      # only: does the OSV service answer? (exit 0 yes, 3 no)

Exit 0: every locked version was checked and none has a known vulnerability that is not accepted.
Exit 1: a known vulnerability (each named), or pip-audit failed part-way: the audit fails closed.
Exit 2: the accepted-vulnerabilities file is wrong: an entry lacks a field or reason, or is past its expiry.
Exit 3: DEPENDENCY AUDIT NOT RUN, the OSV service cannot be reached. Exit 0 instead only when
        TENANTGATE_AUDIT_OFFLINE_OK=1 (set by .ci/run after its own reachability check, with a warning).

The service is pip-audit's OSV default unless PIP_AUDIT_OSV_URL names another (an internal OSV mirror).
The lock is audited as pinned (--no-deps --disable-pip): no resolution, no pip, no package index involved.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCK = ROOT / "requirements" / "test-lock.txt"
DEFAULT_ACCEPTED = ROOT / "security" / "accepted-vulnerabilities.toml"
OFFLINE_OK = "TENANTGATE_AUDIT_OFFLINE_OK"
PROBE_TIMEOUT_S = 10

_FIELDS = ("id", "package", "reason", "accepted_by", "expires")
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$", re.MULTILINE)


class AuditError(Exception):
    """The audit cannot pass; ``exit_code`` says why (see the module docstring)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Accepted:
    """One accepted advisory: passed to pip-audit as ``--ignore-vuln``."""

    id: str
    package: str
    reason: str
    accepted_by: str
    expires: dt.date


def load_accepted(path: Path, today: dt.date) -> list[Accepted]:
    """Every entry, checked: all fields present and non-empty, a real date, not expired, no id twice."""
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise AuditError(f"{path}: cannot be read: {error}", 2) from error
    unknown = set(document) - {"accepted"}
    if unknown:
        raise AuditError(f"{path}: unknown top-level keys {sorted(unknown)}; entries go in [[accepted]] tables", 2)
    entries: list[Accepted] = []
    for number, entry in enumerate(document.get("accepted", []), 1):
        where = f"{path.name}, [[accepted]] entry {number}"
        if not isinstance(entry, dict):
            raise AuditError(f"{where}: not a table", 2)
        extra, missing = set(entry) - set(_FIELDS), [f for f in _FIELDS if f not in entry]
        if extra or missing:
            raise AuditError(f"{where}: missing fields {missing}, unknown fields {sorted(extra)}", 2)
        texts = {f: entry[f] for f in _FIELDS if f != "expires"}
        blank = [f for f, value in texts.items() if not isinstance(value, str) or not value.strip()]
        if blank:
            raise AuditError(f"{where} ({entry['id']}): {', '.join(blank)} must be non-empty text", 2)
        expires = entry["expires"]
        if not isinstance(expires, dt.date) or isinstance(expires, dt.datetime):
            raise AuditError(f"{where} ({entry['id']}): expires must be a TOML date such as 2027-01-31", 2)
        if expires < today:
            raise AuditError(
                f"{where}: the acceptance of {entry['id']} in {entry['package']} expired on {expires}: "
                "upgrade the dependency, or decide again and record a new expiry date",
                2,
            )
        entries.append(Accepted(expires=expires, **{f: v.strip() for f, v in texts.items()}))
    ids = [entry.id for entry in entries]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise AuditError(f"{path.name}: advisories accepted twice: {twice}", 2)
    return entries


def locked_pins(lock: Path) -> list[tuple[str, str]]:
    try:
        pins = _PIN.findall(lock.read_text())
    except OSError as error:
        raise AuditError(f"{lock}: cannot be read: {error}", 1) from error
    if not pins:
        raise AuditError(f"{lock}: no name==version pins in it, so there is nothing to audit", 1)
    return pins


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def osv_url() -> str:
    try:
        from pip_audit._service.osv import OsvService  # pip-audit's own default, so both agree
    except ImportError as error:
        raise AuditError(
            f"pip-audit with its OSV service cannot be imported ({error}); it is in the test extra: "
            "pip install -c requirements/test-lock.txt '.[test]'",
            1,
        ) from error
    return os.environ.get("PIP_AUDIT_OSV_URL") or OsvService.DEFAULT_OSV_URL


def probe(url: str, name: str, version: str) -> None:
    """One real OSV query; raises unless the service answers it with a JSON object."""
    if not url.startswith(("https://", "http://")):
        raise AuditError(f"the OSV URL {url!r} is not an http(s) URL", 3)
    query = json.dumps({"package": {"name": name, "ecosystem": "PyPI"}, "version": version}).encode()
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(url, data=query, headers=headers)  # noqa: S310 (scheme checked above)
    try:
        with urllib.request.urlopen(request, timeout=PROBE_TIMEOUT_S) as response:  # noqa: S310 (scheme checked)
            answer = json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AuditError(f"the OSV service at {url} answered HTTP {error.code} to a query", 3) from error
    except (urllib.error.URLError, OSError) as error:
        raise AuditError(f"the OSV service at {url} cannot be reached: {getattr(error, 'reason', error)}", 3) from error
    except ValueError as error:
        raise AuditError(f"the OSV service at {url} did not answer JSON: {error}", 3) from error
    if not isinstance(answer, dict):
        raise AuditError(f"the OSV service at {url} answered {type(answer).__name__}, not an OSV response", 3)


def run_pip_audit(lock: Path, url: str, accepted: list[Accepted]) -> tuple[list[dict[str, Any]], str]:
    """The dependencies pip-audit checked (its JSON report) and its summary; raises if it failed or found any."""
    with tempfile.TemporaryDirectory(prefix="tenantgate-audit-") as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(lock), "--no-deps", "--disable-pip", "--strict",
            "--vulnerability-service", "osv", "--osv-url", url, "--format", "json", "--output", str(report),
            "--aliases", "on", "--desc", "on", "--progress-spinner", "off", "--cache-dir", str(Path(scratch) / "cache"),
            *(arg for entry in accepted for arg in ("--ignore-vuln", entry.id)),
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our arguments)
        dependencies: list[dict[str, Any]] = json.loads(report.read_text())["dependencies"] if report.exists() else []
    found = [(dep, vuln) for dep in dependencies for vuln in dep.get("vulns", [])]
    if found:
        count = f"{len(found)} known vulnerabilit{'y' if len(found) == 1 else 'ies'}"
        lines = [f"DEPENDENCY AUDIT FAILED: {count} in {lock.name}:"]
        for dep, vuln in found:
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            fixed = f"fixed in {', '.join(vuln['fix_versions'])}" if vuln["fix_versions"] else "no fixed version yet"
            lines.append(f"  {dep['name']} {dep['version']}: {vuln['id']}{aliases}, {fixed}")
            lines.append(f"      {vuln.get('description', '')[:200]}")
        lines.append(
            "Upgrade the pin (sh requirements/compile.sh --upgrade-package NAME), or, if it cannot reach tenantgate, "
            "accept it in security/accepted-vulnerabilities.toml with a reason and an expiry date."
        )
        raise AuditError("\n".join(lines), 1)
    if done.returncode != 0:
        raise AuditError(f"DEPENDENCY AUDIT FAILED: pip-audit exited {done.returncode}:\n{done.stderr.strip()}", 1)
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    if skipped or not dependencies:
        raise AuditError(f"DEPENDENCY AUDIT FAILED: pip-audit checked nothing, or skipped {skipped}", 1)
    summary = done.stderr.strip().splitlines()
    return dependencies, summary[-1] if summary else ""


def audit(lock: Path, accepted_file: Path) -> int:
    accepted = load_accepted(accepted_file, dt.datetime.now(dt.UTC).date())
    pins = locked_pins(lock)
    url = osv_url()
    try:
        probe(url, *pins[0])
    except AuditError as error:
        banner = "!" * 78
        print(f"{banner}\n!! DEPENDENCY AUDIT NOT RUN: {error}")
        print("!! No dependency was checked for known vulnerabilities.")
        if os.environ.get(OFFLINE_OK) == "1":
            print(f"!! {OFFLINE_OK}=1: continuing without the audit.\n{banner}")
            return 0
        print(f"!! Point PIP_AUDIT_OSV_URL at a reachable OSV service, or set {OFFLINE_OK}=1 to go on.\n{banner}")
        return error.exit_code
    locked = {_canonical(name) for name, _ in pins}
    for entry in accepted:
        print(f"accepted: {entry.id} in {entry.package}, by {entry.accepted_by} until {entry.expires}: {entry.reason}")
        if _canonical(entry.package) not in locked:
            print(f"  note: {entry.package} is not in {lock.name} any more; the entry can go")
    checked, summary = run_pip_audit(lock, url, accepted)
    print(f"dependency audit passed: {len(checked)} locked packages of {lock.name} checked against {url}")
    print(f"pip-audit: {summary}")  # counts the accepted advisories it found and ignored
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lock", type=Path, default=DEFAULT_LOCK)
    parser.add_argument("--accepted", type=Path, default=DEFAULT_ACCEPTED)
    parser.add_argument("--probe", action="store_true", help="only check that the OSV service answers")
    args = parser.parse_args()
    try:
        if args.probe:
            probe(osv_url(), *locked_pins(args.lock)[0])
            print(f"the OSV service at {osv_url()} answers")
            return 0
        return audit(args.lock, args.accepted)
    except AuditError as error:
        print(error, file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
