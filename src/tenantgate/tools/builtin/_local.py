"""The self-hosted tools assembled from settings: the workspace files and the sandboxed shell.

In ``saas`` they are still built (so the registry can name them when it refuses them) but
nothing is probed or created: the registry leaves tools with local capabilities out.
"""

from __future__ import annotations

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.tools._registry import ToolPackage
from tenantgate.tools._spec import Tool
from tenantgate.tools.builtin._files import workspace_tools
from tenantgate.tools.builtin._sandbox import Limits, Sandbox
from tenantgate.tools.builtin._shell import shell_tools
from tenantgate.tools.builtin._workspace import Workspaces

__all__ = ["self_hosted_tools"]


def self_hosted_tools(settings: Settings) -> tuple[list[Tool], list[ToolPackage]]:
    """read_file, write_file, edit_file, list_dir and shell, with their packages, from ``settings``."""
    sandbox = Sandbox.for_this_process(
        kind=settings.shell_sandbox,
        bwrap=settings.shell_bwrap,
        network=settings.shell_network,
        output_bytes=settings.shell_output_bytes,
        limits=Limits(
            cpu_seconds=settings.shell_cpu_seconds,
            memory_bytes=settings.shell_memory_bytes,
            file_bytes=settings.shell_file_bytes,
            processes=settings.shell_processes,
            open_files=settings.shell_open_files,
        ),
    )
    workspaces = Workspaces(
        settings.workspace_dir,
        max_file_bytes=settings.workspace_max_file_bytes,
        max_list_entries=settings.workspace_max_list_entries,
        owner=sandbox.host_user,
    )
    # The start-up check: a missing or broken bwrap does not stop the server, it disables the shell.
    unavailable = sandbox.probe() if settings.mode is DeploymentMode.SELF_HOSTED else None
    files, file_packages = workspace_tools(workspaces)
    shell, shell_packages = shell_tools(
        workspaces,
        sandbox,
        default_timeout_s=settings.shell_timeout_s,
        max_timeout_s=settings.shell_max_timeout_s,
        unavailable=unavailable,
        announce=settings.mode is DeploymentMode.SELF_HOSTED,
    )
    return [*files, *shell], [*file_packages, *shell_packages]
