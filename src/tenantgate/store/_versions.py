"""Choosing the version a restore brings back: shared by every kind that keeps version rows."""

from __future__ import annotations

from collections.abc import Sequence

from tenantgate.errors import InvalidInput, NotFound

__all__ = ["restore_target"]


def restore_target(
    history: Sequence[tuple[int, str]], *, requested: int | None, deleted: bool, deletion: str, what: str
) -> int:
    """The version to restore: ``requested``, or by default the latest one that is not a deletion.

    ``history`` is the item's (version, change) pairs; ``deletion`` is the change name its
    kind uses for a delete. Without ``requested`` only a deleted item can be restored (a
    live one is already at its latest version). Raises before anything is written.
    """
    known = dict(history)
    if not known:
        raise NotFound(f"No {what} in this tenant.")
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise InvalidInput(f"A version is a whole number from 1; nothing was restored (got {requested!r}).")
        if requested not in known:
            raise NotFound(
                f"The {what} has no version {requested}: its versions are 1 to {max(known)}. Nothing was restored."
            )
        return requested
    if not deleted:
        raise InvalidInput(
            f"The {what} is not deleted: name the version to restore it to (a live item is at its latest version)."
        )
    before = [v for v, change in sorted(known.items()) if change != deletion]
    if not before:
        raise NotFound(f"The {what} has no version from before its deletion to restore.")
    return before[-1]
