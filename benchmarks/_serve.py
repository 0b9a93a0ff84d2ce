"""Serving an app in a uvicorn child process, and HTTP load drivers to measure it.

`served` starts one uvicorn worker (uvloop + httptools, as ``tenantgate serve`` runs it) in a
spawned child process. The child builds its app from an importable factory: a module-level
function, or a ``"module:function"`` reference, called with keyword arguments of plain values.
`bare_app`, `tenantgate_app` and `echo_app` are ready-made factories. A driver (`httpx_driver`,
`raw_driver`) opens keep-alive connections and gives a `Send` coroutine function that makes
one request and checks its status; `load_case` turns it into a timed case.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from functools import partial
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Field

from _db import open_services
from _harness import BenchError, Case, discarded_logs, run_concurrently
from tenantgate.api import create_app
from tenantgate.config import Settings
from tenantgate.context import DeploymentMode
from tenantgate.installation import Installation, Services
from tenantgate.tools import ToolCall, ToolEffect, ToolPackage, ToolRegistry, tool

HOST = "127.0.0.1"
HTTP_TIMEOUT_S = 10
AppFactory = Callable[..., Any] | str  # a module-level function, or "module:function"


# --- app factories -------------------------------------------------------------------------


def bare_app() -> FastAPI:
    """The baseline: one ``GET /noop`` route returning ``{}``, no middleware."""
    app = FastAPI()

    @app.get("/noop")
    async def noop() -> dict[str, str]:
        return {}

    return app


def tenantgate_app(settings: dict[str, Any]) -> FastAPI:
    """The tenantgate API on the installation ``settings`` describe (see `_db.settings_kwargs`)."""
    return create_app(open_services(settings))


class EchoArgs(BaseModel):
    text: str = Field(max_length=1000)


@tool("echo@v1", description="Repeat the text.", effect=ToolEffect.READ)
async def echo(call: ToolCall, args: EchoArgs) -> dict[str, str]:
    return {"text": args.text}


def echo_registry() -> ToolRegistry:
    """One trivial tool, ``echo@v1``, in a package ``basics``: tool calls that cost nothing themselves."""
    registry = ToolRegistry(DeploymentMode.SAAS)
    registry.register(echo)
    registry.add_package(ToolPackage("basics", "Echo.", ("echo@v1",)))
    return registry


def echo_app(settings: dict[str, Any]) -> FastAPI:
    """The tenantgate API (``/mcp`` included) with `echo_registry`, built in the server process."""
    installation = Installation.open(Settings(_env_file=None, **settings), migrate_schema=False)
    return create_app(Services.build(installation, registry=echo_registry()))


def factory_ref(factory: AppFactory) -> str:
    """``"module:function"`` for a module-level function, so that a spawned child can import it."""
    if isinstance(factory, str):
        return factory
    if "<" in factory.__qualname__:  # <lambda>, <locals>
        raise BenchError(f"{factory.__qualname__} is not importable: define app factories at module level")
    # A factory in the script itself is in __main__, which the spawned child re-imports under that name.
    return f"{factory.__module__}:{factory.__qualname__}"


def load_factory(ref: str) -> Callable[..., Any]:
    """The function a ``"module:function"`` reference names."""
    module, _, name = ref.partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target  # type: ignore[no-any-return]


# --- serving -------------------------------------------------------------------------------


def serve(factory: str, kwargs: dict[str, Any], port: int, parent: int, lifetime_s: int) -> None:
    """Child process: one uvicorn worker, configured like ``tenantgate serve``.

    Except the keep-alive timeout: a client's connections may sit idle while another server is
    measured, and must still be open when its turn comes.
    """
    threading.Thread(target=exit_with_parent, args=(parent, lifetime_s), daemon=True).start()
    with discarded_logs():  # the access log line is rendered, then discarded
        app = load_factory(factory)(**kwargs)
        uvicorn.run(app, host=HOST, port=port, log_config=None, access_log=False, timeout_keep_alive=lifetime_s)


def exit_with_parent(parent: int, lifetime_s: int) -> None:
    """Never outlive the benchmark, even if it was killed, nor ``lifetime_s``."""
    deadline = time.monotonic() + lifetime_s
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.5)
    os._exit(1)


def free_port() -> int:
    """A TCP port on `HOST` that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def served(factory: AppFactory, kwargs: dict[str, Any], lifetime_s: int) -> Iterator[str]:
    """``factory(**kwargs)`` served in a spawned child process; its base URL. Stopped (SIGTERM, then SIGKILL) on exit.

    ``kwargs`` are pickled to the child: plain values. ``lifetime_s`` bounds the child's life and keep-alive.
    """
    port = free_port()
    process = multiprocessing.get_context("spawn").Process(
        target=serve, args=(factory_ref(factory), kwargs, port, os.getpid(), lifetime_s), daemon=True
    )
    process.start()
    try:
        wait_until_listening(process, port)
        yield f"http://{HOST}:{port}"
    finally:
        process.terminate()
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join()


def wait_until_listening(process: multiprocessing.process.BaseProcess, port: int, timeout_s: float = 60) -> None:
    """Wait for the child to accept connections (uvicorn listens only after its lifespan start-up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not process.is_alive():
            raise BenchError(f"the {port} server exited with code {process.exitcode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.1)
    raise BenchError(f"no server listening on port {port} after {timeout_s:.0f}s")


# --- load drivers --------------------------------------------------------------------------

Send = Callable[[], Awaitable[None]]  # one request; raises BenchError on an unexpected status


class Driver(Protocol):
    """Opens ``connections`` keep-alive connections to ``url``; yields a `Send` for one fixed request."""

    def __call__(
        self,
        url: str,
        path: str,
        headers: Mapping[str, str],
        connections: int,
        *,
        method: str = "GET",
        body: bytes = b"",
        expect: int = 200,
    ) -> contextlib.AbstractAsyncContextManager[Send]: ...


def expect_status(method: str, path: str, expect: int, status: int, body: bytes) -> None:
    """Raise `BenchError` unless the response has the expected status."""
    if status != expect:
        raise BenchError(f"{method} {path}: {status} {body[:200]!r}")


@contextlib.asynccontextmanager
async def httpx_driver(
    url: str,
    path: str,
    headers: Mapping[str, str],
    connections: int,
    *,
    method: str = "GET",
    body: bytes = b"",
    expect: int = 200,
) -> AsyncIterator[Send]:
    """httpx.AsyncClient with a keep-alive pool of ``connections``."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=HTTP_TIMEOUT_S) as client:

        async def send() -> None:
            response = await client.request(method, path, content=body or None)
            expect_status(method, path, expect, response.status_code, response.content)

        yield send


@contextlib.asynccontextmanager
async def raw_driver(
    url: str,
    path: str,
    headers: Mapping[str, str],
    connections: int,
    *,
    method: str = "GET",
    body: bytes = b"",
    expect: int = 200,
) -> AsyncIterator[Send]:
    """Hand-written HTTP/1.1 requests on ``connections`` keep-alive sockets: the cheapest client we can have.

    It reads responses that carry a Content-Length (no chunked encoding), nothing more.
    """
    parts = urlsplit(url)
    host, port = parts.hostname, parts.port
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await asyncio.open_connection(host, port))

    async def send() -> None:
        reader, writer = idle.get_nowait()  # one connection per concurrent task: never empty
        writer.write(request)
        async with asyncio.timeout(HTTP_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            content = await reader.readexactly(int(fields.get(b"content-length", b"0")))
        expect_status(method, path, expect, int(head[9:12]), content)
        idle.put_nowait((reader, writer))

    try:
        yield send
    finally:
        while not idle.empty():
            idle.get_nowait()[1].close()


DRIVERS: dict[str, Driver] = {"httpx.AsyncClient": httpx_driver, "raw asyncio HTTP/1.1 client": raw_driver}


async def load_case(
    clients: contextlib.AsyncExitStack,
    driver: Driver,
    url: str,
    path: str,
    headers: Mapping[str, str],
    *,
    requests: int,
    connections: int,
    **request: Any,
) -> Case:
    """A case: ``requests`` requests over ``connections`` concurrent connections (closed with ``clients``).

    ``request`` goes to the driver: ``method``, ``body``, ``expect``.
    """
    send = await clients.enter_async_context(driver(url, path, headers, connections, **request))
    return partial(run_concurrently, send, requests, connections)
