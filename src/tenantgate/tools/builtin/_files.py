"""The workspace file tools: read_file, write_file, edit_file, list_dir (self-hosted only).

They declare ``fs.read`` / ``fs.write``, so a saas registry never holds them. Each call
works in the calling tenant's workspace (the tenant comes from the call's context) through
:class:`~tenantgate.tools.builtin._workspace.Workspace`, which refuses every path that
could lead outside it.
"""

from __future__ import annotations

import asyncio

from pydantic import BaseModel, ConfigDict, Field

from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._resources import ToolCall
from tenantgate.tools._spec import Capability, Tool, ToolEffect, tool
from tenantgate.tools.builtin._workspace import Workspaces

__all__ = ["workspace_tools"]

_PATH = Field(min_length=1, max_length=1024, description="A path relative to the workspace, like 'notes/todo.md'.")


class ReadFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = _PATH


class ReadFileOut(BaseModel):
    path: str
    content: str


class WriteFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = _PATH
    content: str = Field(description="The whole new content of the file (UTF-8 text).")


class WriteFileOut(BaseModel):
    path: str
    bytes: int
    created: bool


class EditFileArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = _PATH
    old_text: str = Field(min_length=1, description="Exact text that occurs exactly once in the file.")
    new_text: str = Field(description="The text that replaces it.")


class EditFileOut(BaseModel):
    path: str
    bytes: int


class ListDirArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(default=".", min_length=1, max_length=1024, description="A directory relative to the workspace.")


class EntryOut(BaseModel):
    name: str
    kind: str
    size: int | None


class ListDirOut(BaseModel):
    path: str
    entries: list[EntryOut]
    truncated: bool


def workspace_tools(workspaces: Workspaces) -> tuple[list[Tool], list[ToolPackage]]:
    """The four file tools over ``workspaces``, and the ``workspace`` package that installs them."""

    @tool(
        "read_file@v1",
        description="Read a UTF-8 text file from your workspace.",
        effect=ToolEffect.READ,
        capabilities={Capability.FS_READ},
        output=ReadFileOut,
    )
    async def read_file(call: ToolCall, args: ReadFileArgs) -> ReadFileOut:
        space = workspaces.for_tenant(call.ctx)
        content = await asyncio.to_thread(space.read_text, args.path)
        return ReadFileOut(path=args.path, content=content)

    @tool(
        "write_file@v1",
        description="Create or replace a UTF-8 text file in your workspace (parent directories are created).",
        effect=ToolEffect.WRITE,
        capabilities={Capability.FS_WRITE},
        output=WriteFileOut,
    )
    async def write_file(call: ToolCall, args: WriteFileArgs) -> WriteFileOut:
        space = workspaces.for_tenant(call.ctx)
        size, created = await asyncio.to_thread(space.write_text, args.path, args.content)
        return WriteFileOut(path=args.path, bytes=size, created=created)

    @tool(
        "edit_file@v1",
        description="Replace the one occurrence of old_text with new_text in a workspace file.",
        effect=ToolEffect.WRITE,
        capabilities={Capability.FS_READ, Capability.FS_WRITE},
        output=EditFileOut,
    )
    async def edit_file(call: ToolCall, args: EditFileArgs) -> EditFileOut:
        space = workspaces.for_tenant(call.ctx)
        size = await asyncio.to_thread(space.edit, args.path, args.old_text, args.new_text)
        return EditFileOut(path=args.path, bytes=size)

    @tool(
        "list_dir@v1",
        description="List a directory of your workspace: names, kinds and sizes.",
        effect=ToolEffect.READ,
        capabilities={Capability.FS_READ},
        output=ListDirOut,
    )
    async def list_dir(call: ToolCall, args: ListDirArgs) -> ListDirOut:
        space = workspaces.for_tenant(call.ctx)
        listing = await asyncio.to_thread(space.list, args.path)
        return ListDirOut(
            path=listing.path,
            entries=[EntryOut(name=e.name, kind=e.kind, size=e.size) for e in listing.entries],
            truncated=listing.truncated,
        )

    tools = [read_file, write_file, edit_file, list_dir]
    names = tuple(t.name for t in tools)
    package = ToolPackage("workspace", "Read, write and edit files in the tenant's workspace.", names)
    return tools, [package]
