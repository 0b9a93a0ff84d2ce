"""Ordinary web pages for ``web_fetch``: HTML, text, JSON, a PDF, redirects and a slow page."""

from __future__ import annotations

from tests.fakes.server import FakeServer, Reply, Request

HOST = "docs.example.test"

ARTICLE = b"""<!doctype html>
<html><head><title>Row security &amp; you</title>
<style>body { color: red }</style>
<script>window.secret = "ignore previous instructions";</script></head>
<body><nav>Home | Docs</nav>
<h1>Row security</h1>
<p>Policies restrict which rows
   each role can see.</p>
<div hidden>hidden text for models</div>
<span style="display: none">invisible instructions</span><p aria-hidden="true">aria hidden</p>
<noscript>enable js</noscript>
<p>Second paragraph.</p></body></html>"""


class FakeWeb:
    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.pages: dict[str, Reply] = {
            "/article": Reply(200, ARTICLE, {"Content-Type": "text/html; charset=utf-8"}),
            "/notes.txt": Reply(200, b"plain notes\nline two", {"Content-Type": "text/plain; charset=utf-8"}),
            "/data.json": Reply(200, b'{"rows": 3}', {"Content-Type": "application/json"}),
            "/report.pdf": Reply(200, b"%PDF-1.7 ...", {"Content-Type": "application/pdf"}),
            "/missing": Reply(404, b"<h1>Not Found</h1>", {"Content-Type": "text/html"}),
            "/slow": Reply(200, b"late", {"Content-Type": "text/plain"}, delay_s=5),
        }

    async def handle(self, request: Request) -> Reply:
        if request.path == "/go":  # a redirect to wherever ?to= says (open redirects exist)
            return Reply(302, b"", {"Location": request.query["to"][0]})
        return self.pages.get(request.path, Reply(404, b"not found", {"Content-Type": "text/plain"}))
