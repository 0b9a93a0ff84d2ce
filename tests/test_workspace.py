"""Workspace confinement: every way out of a tenant's directory is refused, races included."""

from __future__ import annotations

import ctypes
import os
import stat
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tenantgate.auth import system_context
from tenantgate.context import DeploymentMode
from tenantgate.errors import InvalidInput, NotFound, WorkspaceEscape
from tenantgate.tools.builtin import Workspace, Workspaces

SECRET = "OUTSIDE-SECRET"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory next to the workspaces, holding what must never be read or written through them."""
    place = tmp_path / "outside"
    place.mkdir()
    (place / "secret.txt").write_text(SECRET)
    return place


@pytest.fixture
def spaces(tmp_path: Path) -> Workspaces:
    return Workspaces(tmp_path / "workspaces", max_file_bytes=1000, max_list_entries=5)


@pytest.fixture
def ws(spaces: Workspaces) -> Workspace:
    space = spaces.for_tenant(system_context(uuid.uuid4(), mode=DeploymentMode.SELF_HOSTED, request_id="t"))
    space.ensure()
    return space


def test_workspace_is_per_tenant_and_private(spaces: Workspaces, ws: Workspace) -> None:
    other = spaces.for_tenant(system_context(uuid.uuid4(), mode=DeploymentMode.SELF_HOSTED, request_id="t"))
    assert ws.directory.parent == spaces.root
    assert ws.directory != other.directory
    assert stat.S_IMODE(ws.directory.stat().st_mode) == 0o700
    ws.write_text("mine.txt", "a")
    other.ensure()
    with pytest.raises(NotFound):
        other.read_text("mine.txt")


def test_write_read_edit_list_round_trip(ws: Workspace) -> None:
    assert ws.write_text("notes/deep/todo.md", "one\ntwo\n") == (8, True)
    assert ws.read_text("notes/deep/todo.md") == "one\ntwo\n"
    assert ws.read_text("./notes//deep/./todo.md") == "one\ntwo\n"
    assert ws.write_text("notes/deep/todo.md", "one\ntwo\nthree\n") == (14, False)
    assert ws.edit("notes/deep/todo.md", "two", "TWO") == 14
    assert ws.read_text("notes/deep/todo.md") == "one\nTWO\nthree\n"
    listing = ws.list("notes")
    assert [(e.name, e.kind) for e in listing.entries] == [("deep", "dir")]
    assert ws.list("notes/deep").entries[0].as_dict() == {"name": "todo.md", "kind": "file", "size": 14}
    assert stat.S_IMODE((ws.directory / "notes").stat().st_mode) == 0o700


def test_edit_needs_exactly_one_match_and_changes_nothing_otherwise(ws: Workspace) -> None:
    ws.write_text("f.txt", "a a b")
    with pytest.raises(InvalidInput, match="occurs 2 times"):
        ws.edit("f.txt", "a", "x")
    with pytest.raises(InvalidInput, match="does not occur"):
        ws.edit("f.txt", "zzz", "x")
    with pytest.raises(InvalidInput, match="empty"):
        ws.edit("f.txt", "", "x")
    assert ws.read_text("f.txt") == "a a b"


def test_listing_is_capped(ws: Workspace) -> None:
    for i in range(8):
        ws.write_text(f"f{i}.txt", "x")
    listing = ws.list(".")
    assert len(listing.entries) == 5
    assert listing.truncated


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../outside/secret.txt", "parent_reference"),
        ("a/../../outside/secret.txt", "parent_reference"),
        ("..", "parent_reference"),
        ("/etc/passwd", "absolute_path"),
        ("//etc/passwd", "absolute_path"),
    ],
)
def test_dot_dot_and_absolute_paths_are_refused(ws: Workspace, path: str, reason: str) -> None:
    for attempt in (
        lambda: ws.read_text(path),
        lambda: ws.write_text(path, "x"),
        lambda: ws.edit(path, "a", "b"),
        lambda: ws.list(path),
    ):
        with pytest.raises(WorkspaceEscape) as refused:
            attempt()
        assert refused.value.reason == reason
        assert refused.value.code == "workspace_escape"


def test_symlinks_out_are_refused_for_every_operation(ws: Workspace, outside: Path) -> None:
    os.symlink(outside / "secret.txt", ws.directory / "link.txt")
    os.symlink(outside, ws.directory / "linkdir")
    for attempt in (
        lambda: ws.read_text("link.txt"),
        lambda: ws.edit("link.txt", SECRET, "pwned"),
        lambda: ws.write_text("link.txt", "pwned"),
        lambda: ws.read_text("linkdir/secret.txt"),
        lambda: ws.write_text("linkdir/new.txt", "pwned"),
        lambda: ws.list("linkdir"),
    ):
        with pytest.raises(WorkspaceEscape, match="symbolic link") as refused:
            attempt()
        assert refused.value.reason == "symlink"
    assert (outside / "secret.txt").read_text() == SECRET
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    # A listing shows links for what they are; it does not follow them.
    kinds = {e.name: e.kind for e in ws.list(".").entries}
    assert kinds == {"link.txt": "symlink", "linkdir": "symlink"}


def test_hard_link_to_an_outside_file_is_refused(ws: Workspace, outside: Path) -> None:
    os.link(outside / "secret.txt", ws.directory / "hard.txt")
    for attempt in (
        lambda: ws.read_text("hard.txt"),
        lambda: ws.edit("hard.txt", SECRET, "pwned"),
        lambda: ws.write_text("hard.txt", "pwned"),
    ):
        with pytest.raises(WorkspaceEscape, match="hard links") as refused:
            attempt()
        assert refused.value.reason == "hard_link"
    assert (outside / "secret.txt").read_text() == SECRET


def test_fifos_and_device_files_are_refused_without_opening_them(ws: Workspace) -> None:
    os.mkfifo(ws.directory / "pipe")
    os.symlink("/dev/null", ws.directory / "null")
    for name in ("pipe",):
        with pytest.raises(WorkspaceEscape, match="fifo") as refused:
            ws.read_text(name)  # would block forever if it were opened for reading
        assert refused.value.reason == "not_regular"
        with pytest.raises(WorkspaceEscape, match="fifo"):
            ws.write_text(name, "x")
    with pytest.raises(WorkspaceEscape, match="symbolic link"):
        ws.read_text("null")
    if os.geteuid() == 0:  # only root can make a device node; the sandbox cannot
        os.mknod(ws.directory / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
        with pytest.raises(WorkspaceEscape, match="device"):
            ws.read_text("zero")


def test_oversize_files_are_refused(ws: Workspace) -> None:
    (ws.directory / "big.txt").write_text("x" * 1001)
    with pytest.raises(InvalidInput, match="larger than the workspace limit of 1000 bytes"):
        ws.read_text("big.txt")
    with pytest.raises(InvalidInput, match="larger than"):
        ws.write_text("new.txt", "y" * 1001)
    ws.write_text("edge.txt", "a" + "z" * 999)
    with pytest.raises(InvalidInput, match="larger than"):
        ws.edit("edge.txt", "a", "aa")
    assert not (ws.directory / "new.txt").exists()
    assert ws.read_text("edge.txt") == "a" + "z" * 999


def test_bad_paths_and_non_text(ws: Workspace) -> None:
    with pytest.raises(InvalidInput, match="NUL"):
        ws.read_text("a\x00b")
    with pytest.raises(InvalidInput, match="Name a file"):
        ws.read_text(".")
    with pytest.raises(NotFound):
        ws.read_text("missing/file.txt")
    (ws.directory / "bin").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        ws.read_text("bin")
    ws.write_text("d/f.txt", "x")
    with pytest.raises(InvalidInput, match="is a directory"):
        ws.read_text("d")
    with pytest.raises(InvalidInput, match="not a directory"):
        ws.write_text("d/f.txt/g.txt", "x")


def test_writes_are_atomic_and_leave_no_temp_files(ws: Workspace) -> None:
    ws.write_text("f.txt", "old")
    inode = (ws.directory / "f.txt").stat().st_ino
    ws.write_text("f.txt", "new")
    assert (ws.directory / "f.txt").stat().st_ino != inode  # replaced by rename, not rewritten in place
    assert sorted(p.name for p in ws.directory.iterdir()) == ["f.txt"]


_libc = ctypes.CDLL(None, use_errno=True)
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> None:
    """Atomically swap two names (renameat2 RENAME_EXCHANGE): the attacker's primitive for a TOCTOU race."""
    if _libc.renameat2(_AT_FDCWD, bytes(a), _AT_FDCWD, bytes(b), _RENAME_EXCHANGE) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def _race(a: Path, b: Path, attempt: Callable[[], str], rounds: int = 3000) -> dict[str, int]:
    """Swap ``a`` and ``b`` continuously while ``attempt`` runs ``rounds`` times; count its outcomes."""
    stop = threading.Event()

    def swap() -> None:
        while not stop.is_set():
            _exchange(a, b)

    swapper = threading.Thread(target=swap, daemon=True)
    swapper.start()
    seen: dict[str, int] = {}
    try:
        for _ in range(rounds):
            try:
                outcome = attempt()
            except (WorkspaceEscape, NotFound, InvalidInput) as refused:
                outcome = type(refused).__name__
            seen[outcome] = seen.get(outcome, 0) + 1
    finally:
        stop.set()
        swapper.join()
    return seen


def test_a_directory_swapped_for_a_symlink_mid_walk_never_leads_outside(ws: Workspace, outside: Path) -> None:
    sub = ws.directory / "sub"
    sub.mkdir()
    (sub / "secret.txt").write_text("inside")
    os.symlink(outside, ws.directory / "sub-link")

    def read_and_write() -> str:
        text = ws.read_text("sub/secret.txt")
        ws.write_text("sub/planted.txt", "x")
        return text

    seen = _race(sub, ws.directory / "sub-link", read_and_write)
    assert SECRET not in seen
    assert seen.get("inside", 0) > 0  # the walk ran between swaps too
    assert seen.get("WorkspaceEscape", 0) > 0  # and met the symlink
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]


def test_a_file_swapped_for_a_symlink_after_the_check_is_never_followed(ws: Workspace, outside: Path) -> None:
    (ws.directory / "f.txt").write_text("inside")
    os.symlink(outside / "secret.txt", ws.directory / "f-link")
    seen = _race(ws.directory / "f.txt", ws.directory / "f-link", lambda: ws.read_text("f.txt"))
    assert SECRET not in seen
    assert set(seen) <= {"inside", "WorkspaceEscape"}
    assert seen.get("WorkspaceEscape", 0) > 0
