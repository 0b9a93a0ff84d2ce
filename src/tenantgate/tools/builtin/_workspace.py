"""A tenant's workspace directory, and the only way the file tools touch it.

Every path is walked one component at a time from an open directory fd, each step an
``openat`` with ``O_NOFOLLOW`` (``os.open(..., dir_fd=...)``). There is no
``realpath``-then-open: a check made on a name and an open made later on the same name
can be split by a swap (a directory replaced by a symlink in between). Here the fd that
was checked is the fd that is used, so a swap makes the walk fail, never lead outside.

Refused, each with its own message: absolute paths, ``..``, symlinks anywhere on the path
(the tools never follow links, even ones that stay inside), files with more than one hard
link (one may be a file outside the workspace), anything that is not a regular file or a
directory (devices, FIFOs, sockets), and files over the size limit.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenantgate.context import TenantContext
from tenantgate.errors import InvalidInput, NotFound, WorkspaceEscape

__all__ = ["Entry", "Listing", "Workspace", "Workspaces"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO swapped in after the lstat must not hang the open; fstat refuses it next.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_PATH = 1024
_MAX_DEPTH = 64
_TEMP_PREFIX = ".tg-"


def _components(path: str) -> list[str]:
    """The path's names, relative to the workspace; escapes and malformed paths raise."""
    if len(path) > _MAX_PATH:
        raise InvalidInput(f"The path is longer than {_MAX_PATH} characters.")
    if "\x00" in path:
        raise InvalidInput("The path contains a NUL character.")
    if path.startswith("/"):
        raise WorkspaceEscape(
            f"{path!r} is an absolute path: give a path relative to the workspace (for example 'notes/todo.md').",
            reason="absolute_path",
        )
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise WorkspaceEscape(
            f"{path!r} contains '..': paths may not climb out of a directory, even to come back.",
            reason="parent_reference",
        )
    if len(parts) > _MAX_DEPTH:
        raise InvalidInput(f"The path is more than {_MAX_DEPTH} directories deep.")
    return parts


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "fifo"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "other"


def _symlink(shown: str) -> WorkspaceEscape:
    return WorkspaceEscape(
        f"{shown!r} is a symbolic link: workspace tools do not follow links, which could lead outside the workspace.",
        reason="symlink",
    )


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a directory listing."""

    name: str
    kind: str  # file, dir, symlink, fifo, socket, device, other
    size: int | None  # regular files only

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "size": self.size}


@dataclass(frozen=True, slots=True)
class Listing:
    path: str
    entries: tuple[Entry, ...]
    truncated: bool


class Workspace:
    """One tenant's directory. Methods are blocking (file system calls): run them in a thread."""

    def __init__(self, directory: Path, *, max_file_bytes: int, max_list_entries: int, owner: tuple[int, int] | None):
        self.directory = directory
        self.max_file_bytes = max_file_bytes
        self.max_list_entries = max_list_entries
        self._owner = owner

    # --- the walk -------------------------------------------------------------------------

    def open_root(self) -> int:
        """An fd of the workspace directory itself (created 0700 on first use). The caller closes it."""
        try:
            self.directory.mkdir(mode=0o700, parents=False, exist_ok=False)
        except FileNotFoundError:
            self.directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.directory.mkdir(mode=0o700, exist_ok=True)
        except FileExistsError:
            pass
        fd = os.open(self.directory, _DIR_FLAGS)
        if self._owner is not None:
            os.fchown(fd, *self._owner)
        return fd

    def ensure(self) -> None:
        """Create the workspace directory if it does not exist yet."""
        os.close(self.open_root())

    def _open_dir(self, parent: int, name: str, shown: str, *, create: bool) -> int:
        for attempt in range(2):
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=parent)
            except FileNotFoundError:
                if not create or attempt:
                    raise NotFound(f"{shown!r} does not exist in the workspace.") from None
                try:
                    os.mkdir(name, 0o700, dir_fd=parent)
                except FileExistsError:
                    pass  # made by someone else meanwhile: the O_NOFOLLOW open below judges what it is
                else:
                    if self._owner is not None:
                        os.chown(name, *self._owner, dir_fd=parent, follow_symlinks=False)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise self._refusal(parent, name, shown, want="directory") from None
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _refusal(self, parent: int, name: str, shown: str, *, want: str) -> Exception:
        try:
            mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
        except FileNotFoundError:
            return WorkspaceEscape(f"{shown!r} changed while it was being opened.", reason="changed")
        if stat.S_ISLNK(mode):
            return _symlink(shown)
        return InvalidInput(f"{shown!r} is a {_kind(mode)}, not a {want}.")

    @contextmanager
    def _directory(self, parts: list[str], *, create: bool = False) -> Iterator[int]:
        """The fd of the directory ``parts`` names, reached with O_NOFOLLOW one name at a time."""
        fd = self.open_root()
        try:
            for depth, name in enumerate(parts):
                next_fd = self._open_dir(fd, name, "/".join(parts[: depth + 1]), create=create)
                os.close(fd)
                fd = next_fd
            yield fd
        finally:
            os.close(fd)

    def _check_file(self, st: os.stat_result, shown: str, *, size: bool = True) -> None:
        if stat.S_ISLNK(st.st_mode):
            raise _symlink(shown)
        if stat.S_ISDIR(st.st_mode):
            raise InvalidInput(f"{shown!r} is a directory, not a file: use list_dir.")
        if not stat.S_ISREG(st.st_mode):
            raise WorkspaceEscape(
                f"{shown!r} is a {_kind(st.st_mode)}: only regular files are read or written, never devices, "
                "FIFOs or sockets.",
                reason="not_regular",
            )
        if st.st_nlink > 1:
            raise WorkspaceEscape(
                f"{shown!r} has {st.st_nlink} hard links: one may be a file outside the workspace, so it is refused.",
                reason="hard_link",
            )
        if size and st.st_size > self.max_file_bytes:
            raise self._oversize(shown, st.st_size)

    def _oversize(self, shown: str, size: int | None = None) -> InvalidInput:
        actual = f" ({size} bytes)" if size is not None else ""
        return InvalidInput(
            f"{shown!r} is larger than the workspace limit of {self.max_file_bytes} bytes{actual}.",
            limit=self.max_file_bytes,
        )

    def _read(self, parent: int, name: str, shown: str) -> bytes:
        try:
            before = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            raise NotFound(f"{shown!r} does not exist in the workspace.") from None
        self._check_file(before, shown)  # refuse devices before opening them at all
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            raise NotFound(f"{shown!r} does not exist in the workspace.") from None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise _symlink(shown) from None
            raise
        try:
            after = os.fstat(fd)
            if (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
                raise WorkspaceEscape(f"{shown!r} changed while it was being opened.", reason="changed")
            self._check_file(after, shown)  # the fd we read from is the authority
            chunks: list[bytes] = []
            total = 0
            while chunk := os.read(fd, min(1 << 20, self.max_file_bytes + 1 - total)):
                chunks.append(chunk)
                total += len(chunk)
                if total > self.max_file_bytes:
                    raise self._oversize(shown)
            return b"".join(chunks)
        finally:
            os.close(fd)

    def _replace(self, parent: int, name: str, shown: str, data: bytes) -> bool:
        """Write ``data`` as ``name`` atomically (temp file + rename in the same directory fd)."""
        if len(data) > self.max_file_bytes:
            raise self._oversize(shown, len(data))
        try:
            existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            existing = None
        if existing is not None:
            self._check_file(existing, shown, size=False)
        temp = f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
        fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=parent)
        try:
            try:
                if self._owner is not None:
                    os.fchown(fd, *self._owner)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            # rename replaces the directory entry: a link swapped in meanwhile is replaced, never followed.
            os.rename(temp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temp, dir_fd=parent)
            raise
        return existing is None

    # --- what the tools call ----------------------------------------------------------------

    def read_bytes(self, path: str) -> bytes:
        """The file's content; every refusal raises."""
        parts = _components(path)
        if not parts:
            raise InvalidInput("Name a file, not the workspace itself.")
        with self._directory(parts[:-1]) as parent:
            return self._read(parent, parts[-1], "/".join(parts))

    def read_text(self, path: str) -> str:
        data = self.read_bytes(path)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{path!r} is not UTF-8 text; the file tools read and write text only.") from None

    def write_text(self, path: str, text: str) -> tuple[int, bool]:
        """Write a file atomically, creating parent directories inside the workspace. (bytes, created)."""
        parts = _components(path)
        if not parts:
            raise InvalidInput("Name a file, not the workspace itself.")
        data = text.encode("utf-8")
        with self._directory(parts[:-1], create=True) as parent:
            return len(data), self._replace(parent, parts[-1], "/".join(parts), data)

    def edit(self, path: str, old_text: str, new_text: str) -> int:
        """Replace the one occurrence of ``old_text``; read and write go through the same directory fd."""
        if not old_text:
            raise InvalidInput("old_text is empty: give the exact text to replace.")
        parts = _components(path)
        if not parts:
            raise InvalidInput("Name a file, not the workspace itself.")
        shown = "/".join(parts)
        with self._directory(parts[:-1]) as parent:
            try:
                text = self._read(parent, parts[-1], shown).decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidInput(f"{shown!r} is not UTF-8 text; the file tools edit text only.") from None
            count = text.count(old_text)
            if count == 0:
                raise InvalidInput(f"old_text does not occur in {shown!r}; nothing was changed.")
            if count > 1:
                raise InvalidInput(
                    f"old_text occurs {count} times in {shown!r}: include more context so it matches once."
                )
            data = text.replace(old_text, new_text, 1).encode("utf-8")
            self._replace(parent, parts[-1], shown, data)
            return len(data)

    def list(self, path: str = ".") -> Listing:
        """The directory's entries, sorted by name, at most ``max_list_entries`` of them."""
        parts = _components(path)
        entries: list[Entry] = []
        truncated = False
        with self._directory(parts) as fd, os.scandir(fd) as scan:
            for item in scan:
                if item.name.startswith(_TEMP_PREFIX):
                    continue  # a write in progress
                if len(entries) == self.max_list_entries:
                    truncated = True
                    break
                try:
                    st = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                size = st.st_size if stat.S_ISREG(st.st_mode) else None
                entries.append(Entry(item.name, _kind(st.st_mode), size))
        entries.sort(key=lambda e: e.name)
        return Listing("/".join(parts) or ".", tuple(entries), truncated)


class Workspaces:
    """Every tenant's workspace under one root: ``<root>/<tenant id>``, each 0700."""

    def __init__(
        self,
        root: Path,
        *,
        max_file_bytes: int = 10 * 1024 * 1024,
        max_list_entries: int = 1000,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self.root = root
        self.max_file_bytes = max_file_bytes
        self.max_list_entries = max_list_entries
        # When the server runs as root, the sandboxed shell runs as another host user: the
        # files and directories the tools create are handed to that user so both can use them.
        self.owner = owner

    def directory(self, tenant_id: uuid.UUID) -> Path:
        return self.root / str(tenant_id)

    def for_tenant(self, ctx: TenantContext) -> Workspace:
        """The calling tenant's workspace; the tenant comes from the context, never from arguments."""
        return Workspace(
            self.directory(ctx.tenant_id),
            max_file_bytes=self.max_file_bytes,
            max_list_entries=self.max_list_entries,
            owner=self.owner,
        )
