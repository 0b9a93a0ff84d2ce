"""The r8r workflow engine's HTTP API: list, get (with the YAML definition) and execute workflows."""

from __future__ import annotations

import uuid
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

HOST = "r8r.test"
TOKEN = "r8r-fake-api-token"

SAFE = """\
name: enrich-lead
description: Look a lead up and tag it
trigger:
  http:
    path: /enrich
nodes:
  - id: fetch
    type: http
    config:
      url: https://api.example.com/leads/{{ input.id }}
      method: GET
  - id: shape
    type: transform
    config:
      expression: "nodes.fetch.body"
    depends_on: [fetch]
"""

SHELL = """\
name: cleanup
nodes:
  - id: list
    type: http
    config: {url: "https://api.example.com/x"}
  - id: wipe
    type: shell
    config: {command: "rm -rf /tmp/cache"}
"""

SANDBOXED = """\
name: score
sandbox: {runtime: python}
nodes:
  - id: t
    type: transform
    config: {expression: "1"}
"""

OFF_LIST = """\
name: mailer
nodes:
  - id: send
    type: email
    config: {to: "a@example.com"}
"""


class FakeR8r:
    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.override: Reply | None = None
        self.workflows = {"enrich-lead": SAFE, "cleanup": SHELL, "score": SANDBOXED, "mailer": OFF_LIST}
        self.executed: list[tuple[str, dict[str, Any]]] = []

    async def handle(self, request: Request) -> Reply:
        if self.override is not None:
            return self.override
        if request.bearer() != TOKEN:
            return Reply(401, {"error": "Unauthorized: invalid or missing API token"})
        parts = request.path.strip("/").split("/")
        if parts[:2] != ["api", "workflows"]:
            return Reply(404, {"error": "Not found"})
        if len(parts) == 2 and request.method == "GET":
            listed = [{"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "enabled": True,
                       "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z",
                       "node_count": text.count("- id:"), "trigger_count": 1}
                      for name, text in self.workflows.items()]  # fmt: skip
            return Reply(200, {"workflows": listed})
        name = parts[2] if len(parts) > 2 else ""
        if name not in self.workflows:
            return Reply(404, {"error": f"Workflow not found: {name}"})
        if len(parts) == 3 and request.method == "GET":
            return Reply(200, {"id": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)), "name": name, "enabled": True,
                               "definition": self.workflows[name], "created_at": "2025-01-01T00:00:00Z",
                               "updated_at": "2025-01-01T00:00:00Z"})  # fmt: skip
        if len(parts) == 4 and parts[3] == "execute" and request.method == "POST":
            body = request.json()
            self.executed.append((name, body))
            return Reply(200, {"execution_id": str(uuid.uuid4()), "status": "completed",
                               "output": {"result": body.get("input")}, "duration_ms": 12})  # fmt: skip
        return Reply(405, {"error": "Method not allowed"})
