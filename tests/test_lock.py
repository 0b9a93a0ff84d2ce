"""The lock files and pyproject.toml agree, so the locked set cannot drift from what the project asks for.

``requirements/test-lock.txt`` pins the runtime dependencies and the test extra, ``requirements/lock.txt`` the
runtime ones at the same versions (users install what CI tested); ``sh requirements/compile.sh`` regenerates both.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LOCK = ROOT / "requirements" / "lock.txt"
TEST_LOCK = ROOT / "requirements" / "test-lock.txt"
_RELOCK = "run sh requirements/compile.sh"
_PIN = re.compile(r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)")


def _project() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": project["dependencies"], "test": project["optional-dependencies"]["test"]}


def _pins(path: Path) -> dict[str, Version]:
    """``name==version`` lines only: an option, a URL or a marker in a lock line is an error, not a pin."""
    pins: dict[str, Version] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _PIN.fullmatch(line.strip())
        assert match, f"{path.name}:{number}: not a plain pin: {line!r}"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{path.name}:{number}: {name} pinned twice"
        pins[name] = Version(match["version"])
    return pins


def _closure(requirements: Iterable[str], pins: dict[str, Version], lock: str) -> set[str]:
    """Every distribution the requirements reach on this interpreter, each checked against its pin."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(Requirement(text), "pyproject.toml") for text in requirements]
    while todo:
        requirement, wanted_by = todo.pop()
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} (wanted by {wanted_by}) is not pinned in {lock}: {_RELOCK}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{lock} pins {name}=={pins[name]}, which {wanted_by} refuses ({requirement}): {_RELOCK}"
        )
        extras = frozenset({"", *requirement.extras})
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for text in importlib.metadata.distribution(name).requires or []:
            child = Requirement(text)
            if child.marker is None or any(child.marker.evaluate({"extra": extra}) for extra in extras):
                todo.append((child, name))
    return {name for name, _ in seen}


def test_the_lock_files_hold_plain_pins_and_no_machine_configuration() -> None:
    for path in (RUNTIME_LOCK, TEST_LOCK):
        text = path.read_text()
        # This machine's pip.conf names file:// indexes and a global constraints file; none may reach a lock.
        assert "file:" not in text
        assert "--" not in text.replace("# ", "")
        assert len(_pins(path)) > 20


def test_every_runtime_dependency_and_what_it_needs_is_pinned_in_both_locks() -> None:
    runtime = _project()["runtime"]
    reached = _closure(runtime, _pins(RUNTIME_LOCK), RUNTIME_LOCK.name)
    assert {"fastapi", "uvloop", "psycopg-binary", "greenlet"} <= reached  # extras are followed
    _closure(runtime, _pins(TEST_LOCK), TEST_LOCK.name)


def test_every_test_dependency_and_what_it_needs_is_pinned_in_the_test_lock() -> None:
    project = _project()
    reached = _closure(project["runtime"] + project["test"], _pins(TEST_LOCK), TEST_LOCK.name)
    assert {"pip-audit", "moto", "flask"} <= reached  # moto[server] brings flask


def test_users_get_the_versions_ci_tests() -> None:
    runtime, test = _pins(RUNTIME_LOCK), _pins(TEST_LOCK)
    differ = {name: (version, test.get(name)) for name, version in runtime.items() if test.get(name) != version}
    assert differ == {}


def test_this_environment_has_the_locked_versions() -> None:
    """What the README's test command installs is what the lock says (a venv made without ``-c`` fails here)."""
    wrong = {}
    for name, version in _pins(TEST_LOCK).items():
        try:
            installed = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue  # locked for a Python 3.11 older than this one (a marker the lock does not carry)
        if installed != version:
            wrong[name] = f"installed {installed}, locked {version}"
    assert wrong == {}, "reinstall with the README's test command: pip install -c requirements/test-lock.txt ..."


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("--extra-index-url file:///opt/pypi/simple", "not a plain pin"),
        ("jinja2>=3.1", "not a plain pin"),
        ("jinja2==3.1.6\nJinja2==3.1.6", "pinned twice"),
    ],
)
def test_the_lock_reader_refuses_what_is_not_a_pin(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "lock.txt"
    path.write_text(f"# header\n{text}\n")
    with pytest.raises(AssertionError, match=problem):
        _pins(path)


def test_a_pin_outside_pyproject_specifier_is_caught() -> None:
    pins = _pins(TEST_LOCK) | {"jinja2": Version("3.0.3")}
    with pytest.raises(AssertionError, match=r"pins jinja2==3\.0\.3, which pyproject\.toml refuses"):
        _closure(_project()["runtime"], pins, "lock.txt")


def test_a_missing_pin_is_caught() -> None:
    pins = {name: version for name, version in _pins(TEST_LOCK).items() if name != "markupsafe"}
    with pytest.raises(AssertionError, match=r"markupsafe \(wanted by jinja2\) is not pinned"):
        _closure(["jinja2>=3.1"], pins, "lock.txt")
