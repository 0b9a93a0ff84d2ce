"""Declaring tools, the mode-aware registry, and operators' plugins."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.errors import CapabilityDenied, ConfigurationError
from tenantgate.installation import build_registry
from tenantgate.tools import Capability, ToolCall, ToolEffect, ToolPackage, ToolRegistry, load_plugins, tool
from tests import fixture_tools


class Args(BaseModel):
    x: int


def test_a_declared_tool_exports_its_schema_for_planners() -> None:
    described = fixture_tools.whatsapp_send.spec.describe()
    assert described["name"] == "whatsapp_send@v1"
    assert described["input_schema"]["required"] == ["to", "message"]
    assert (described["effect"], described["high_impact"], described["integration"]) == ("external", True, "whatsapp")
    assert described["capabilities"] == ["credentials", "messaging.outbound"]


@pytest.mark.parametrize("name", ["echo", "Echo@v1", "echo@1", "echo@v0", "echo@v1.2", "e" * 70 + "@v1", "a b@v1"])
def test_tool_names_are_versioned_identifiers(name: str) -> None:
    with pytest.raises(ValueError, match="must look like name@v1"):

        @tool(name, description="x", effect=ToolEffect.READ)
        async def bad(call: ToolCall, args: Args) -> None:
            return None


def test_a_handler_must_be_async_and_typed() -> None:
    with pytest.raises(TypeError, match="async"):

        @tool("sync@v1", description="x", effect=ToolEffect.READ)
        def sync(call: ToolCall, args: Args) -> None:  # type: ignore[arg-type]
            return None

    with pytest.raises(TypeError, match="pydantic model"):

        @tool("untyped@v1", description="x", effect=ToolEffect.READ)
        async def untyped(call: ToolCall, args: dict) -> None:  # type: ignore[type-arg]
            return None


def test_registering_twice_or_packaging_strangers_is_refused() -> None:
    registry = ToolRegistry(DeploymentMode.SAAS)
    registry.register(fixture_tools.echo)
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register(fixture_tools.echo)
    with pytest.raises(ConfigurationError, match="unregistered tools"):
        registry.add_package(ToolPackage("p", "x", ("echo@v1", "ghost@v1")))


@pytest.mark.parametrize("capability", sorted(Capability, key=str))
def test_saas_refuses_exactly_the_local_capabilities(capability: Capability) -> None:
    @tool("probe@v1", description="x", effect=ToolEffect.READ, capabilities={capability})
    async def probe(call: ToolCall, args: Args) -> None:
        return None

    local = capability in {Capability.SHELL, Capability.FS_READ, Capability.FS_WRITE, Capability.PROCESS,
                           Capability.NET_LOCAL}  # fmt: skip
    registry = ToolRegistry(DeploymentMode.SAAS)
    if local:
        with pytest.raises(CapabilityDenied):
            registry.register(probe)
    else:
        registry.register(probe)
        assert "probe@v1" in registry
    ToolRegistry(DeploymentMode.SELF_HOSTED).register(probe)


def test_plugins_load_by_reference() -> None:
    settings = Settings(_env_file=None, plugins="tests.fixture_tools:PLUGIN")  # type: ignore[call-arg]
    registry = build_registry(settings)
    assert [t.name for t in registry][-1] == "echo@v1"  # after the built-ins
    assert registry.package_tools("plugin-basics") == ("echo@v1",)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("tests.fixture_tools:LOCAL_PLUGIN", "saas mode never grants"),
        ("tests.fixture_tools:nothing", "Cannot load plugin"),
        ("no.such.module:x", "Cannot load plugin"),
        ("tests.fixture_tools", "must look like"),
        ("tests.fixture_tools:CONTACTS_NOT_TOOLS", "Tools and ToolPackages only"),
    ],
)
def test_bad_or_unsafe_plugins_stop_start_up(ref: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        load_plugins(ToolRegistry(DeploymentMode.SAAS), [ref])


def test_local_plugins_load_in_self_hosted() -> None:
    registry = ToolRegistry(DeploymentMode.SELF_HOSTED)
    load_plugins(registry, ["tests.fixture_tools:LOCAL_PLUGIN"])
    assert "shell@v1" in registry
