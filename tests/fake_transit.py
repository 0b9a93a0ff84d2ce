"""A loopback stand-in for HashiCorp Vault's transit engine, speaking its HTTP API.

Real request and response shapes (``/v1/<mount>/encrypt/<key>``, ``/decrypt/<key>``,
``/keys/<key>/rotate``; the ``X-Vault-Token`` header; ``{"data": {...}}`` bodies; errors as
``{"errors": [...]}`` with 400/403/404) and real cryptography: each key version is an
AES-256-GCM key and a ciphertext is ``vault:v<n>:base64(nonce || ciphertext || tag)``,
as Vault's ``aes256-gcm96`` keys produce. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PATH = re.compile(
    r"^/v1/(?P<mount>[a-z0-9_-]+)/(?:(?P<op>encrypt|decrypt)/(?P<key>[^/]+)|keys/(?P<rkey>[^/]+)/rotate"
    r"|keys/(?P<ckey>[^/]+)/config|keys/(?P<dkey>[^/]+))$"
)
_CIPHERTEXT = re.compile(r"^vault:v([0-9]+):(.+)$")


@dataclass
class FakeTransit:
    token: str = field(default_factory=lambda: "hvs." + uuid.uuid4().hex)
    mount: str = "transit"
    keys: dict[str, list[bytes]] = field(default_factory=dict)  # name -> versions (v1 first)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    bodies: list[bytes] = field(default_factory=list)
    deletable: set[str] = field(default_factory=set)  # keys whose config has deletion_allowed
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, port: int = 0) -> FakeTransit:
        """Listen on 127.0.0.1 (``port``, or a free one): a stopped fake can start again where it was."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                fake.requests.append((self.command, self.path))
                fake.bodies.append(raw)
                status, body = fake.handle(self.path, self.headers.get("X-Vault-Token"), raw, method=self.command)
                payload = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_DELETE = do_POST  # noqa: N815 - http.server's naming

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # --- Vault's behaviour -----------------------------------------------------------------

    def handle(
        self, path: str, token: str | None, raw: bytes, method: str = "POST"
    ) -> tuple[int, dict[str, Any] | None]:
        match = _PATH.fullmatch(path)
        if match is None or match["mount"] != self.mount or (method == "DELETE") != bool(match["dkey"]):
            return 404, {"errors": []}
        if token != self.token:
            return 403, {"errors": ["permission denied"]}
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return 400, {"errors": ["failed to parse JSON input"]}
        if match["rkey"]:
            return self._rotate(match["rkey"])
        if match["ckey"]:
            return self._configure(match["ckey"], body)
        if match["dkey"]:
            return self._delete(match["dkey"])
        if match["op"] == "encrypt":
            return self._encrypt(match["key"], body)
        return self._decrypt(match["key"], body)

    def _envelope(self, data: dict[str, Any]) -> dict[str, Any]:
        return {
            "request_id": str(uuid.uuid4()), "lease_id": "", "renewable": False, "lease_duration": 0,
            "data": data, "wrap_info": None, "warnings": None, "auth": None, "mount_type": "transit",
        }  # fmt: skip

    def _rotate(self, name: str) -> tuple[int, dict[str, Any] | None]:
        versions = self.keys.setdefault(name, [AESGCM.generate_key(bit_length=256)])
        versions.append(AESGCM.generate_key(bit_length=256))
        data = {"name": name, "type": "aes256-gcm96", "latest_version": len(versions), "min_decryption_version": 1}
        return 200, self._envelope(data)

    def _configure(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        if name not in self.keys:
            return 400, {"errors": [f"no existing key named {name} could be found"]}
        if body.get("deletion_allowed") is True:
            self.deletable.add(name)
        return 204, None

    def _delete(self, name: str) -> tuple[int, dict[str, Any] | None]:
        if name not in self.keys:
            return 400, {"errors": ["could not delete key; not found"]}
        if name not in self.deletable:
            return 400, {"errors": ["deletion is not allowed for this key"]}
        del self.keys[name]
        return 204, None

    def _encrypt(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        try:
            plaintext = base64.b64decode(body["plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error):
            return 400, {"errors": ["illegal base64 data at input byte 0"]}
        versions = self.keys.setdefault(name, [AESGCM.generate_key(bit_length=256)])  # upsert, as Vault does
        nonce = os.urandom(12)
        sealed = AESGCM(versions[-1]).encrypt(nonce, plaintext, None)
        ciphertext = f"vault:v{len(versions)}:" + base64.b64encode(nonce + sealed).decode()
        return 200, self._envelope({"ciphertext": ciphertext, "key_version": len(versions)})

    def _decrypt(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
        versions = self.keys.get(name)
        if versions is None:
            return 400, {"errors": ["encryption key not found"]}
        match = _CIPHERTEXT.fullmatch(str(body.get("ciphertext", "")))
        if match is None:
            return 400, {"errors": ["invalid ciphertext: no prefix"]}
        version = int(match[1])
        if not 1 <= version <= len(versions):
            return 400, {"errors": ["invalid key version"]}
        try:
            raw = base64.b64decode(match[2], validate=True)
            plaintext = AESGCM(versions[version - 1]).decrypt(raw[:12], raw[12:], None)
        except (binascii.Error, ValueError, InvalidTag):
            return 400, {"errors": ["cipher: message authentication failed"]}
        return 200, self._envelope({"plaintext": base64.b64encode(plaintext).decode()})
