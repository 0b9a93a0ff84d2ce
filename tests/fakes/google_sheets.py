"""Google Sheets API v4 values endpoints and Google's OAuth token endpoint, on one loopback server.

``GET /v4/spreadsheets/{id}/values/{range}``, ``POST .../values/{range}:append`` and
``PUT .../values/{range}`` (both need ``valueInputOption``), bearer access tokens; and
``POST /token`` with ``grant_type=refresh_token``. Errors as Google sends them.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.server import FakeServer, Reply, Request

SHEETS_HOST = "sheets.googleapis.test"
TOKEN_HOST = "oauth2.googleapis.test"
SPREADSHEET_ID = "1BxiMVs0XRA5nFMdKvBdBZjgmUUqptlbs74OgvE2upms"
CLIENT_ID = "123-fake.apps.googleusercontent.com"
CLIENT_SECRET = "GOCSPX-fake-client-secret"
REFRESH_TOKEN = "1//0g-fake-refresh-token"

_A1 = re.compile(r"^(?:(?P<sheet>[^!]+)!)?(?P<c1>[A-Z]+)(?P<r1>[0-9]+)(?::(?P<c2>[A-Z]+)(?P<r2>[0-9]+))?$")


def google_error(code: int, status: str, message: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})


def unauthenticated() -> Reply:
    return google_error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 "
                        "access token, login cookie or other valid authentication credential.")  # fmt: skip


def quota_exceeded() -> Reply:
    return google_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for quota metric 'Read requests' and limit "
                        "'Read requests per minute per user' of service 'sheets.googleapis.com'.")  # fmt: skip


def _col(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n - 1


def _letters(index: int) -> str:
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(65 + rem) + out
    return out


class FakeGoogleSheets:
    def __init__(self) -> None:
        self.server = FakeServer(self.handle)
        self.override: Reply | None = None
        self.valid_tokens: set[str] = {"ya29.valid-token"}
        self.issued = 0
        self.reject_all = False  # refuse every access token, even freshly issued ones
        self.sheets: dict[str, list[list[Any]]] = {"Sheet1": [["name", "qty"], ["apples", "3"]]}

    async def handle(self, request: Request) -> Reply:
        if self.override is not None:
            return self.override
        if request.path == "/token":
            return self._token(request)
        prefix = f"/v4/spreadsheets/{SPREADSHEET_ID}/values/"
        if not request.path.startswith(prefix):
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        if self.reject_all or request.bearer() not in self.valid_tokens:
            return unauthenticated()
        target = request.path.removeprefix(prefix)
        if request.method == "POST" and target.endswith(":append"):
            return self._write(request, target.removesuffix(":append"), append=True)
        if request.method == "PUT":
            return self._write(request, target, append=False)
        if request.method == "GET":
            return self._read(target)
        return google_error(400, "INVALID_ARGUMENT", "Invalid request.")

    def _token(self, request: Request) -> Reply:
        form = request.form()
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return Reply(401, {"error": "invalid_client", "error_description": "The OAuth client was not found."})
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != REFRESH_TOKEN:
            return Reply(400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
        self.issued += 1
        token = f"ya29.refreshed-{self.issued}"
        self.valid_tokens.add(token)
        return Reply(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer",
                           "scope": "https://www.googleapis.com/auth/spreadsheets"})  # fmt: skip

    def _parse(self, target: str) -> tuple[str, int, int, int, int] | None:
        m = _A1.match(target)
        if m is None or (m["sheet"] or "Sheet1") not in self.sheets:
            return None
        c1, r1 = _col(m["c1"]), int(m["r1"]) - 1
        c2, r2 = (_col(m["c2"]), int(m["r2"]) - 1) if m["c2"] else (c1, r1)
        return m["sheet"] or "Sheet1", c1, r1, c2, r2

    def _bad_range(self, target: str) -> Reply:
        return google_error(400, "INVALID_ARGUMENT", f"Unable to parse range: {target}")

    def _read(self, target: str) -> Reply:
        parsed = self._parse(target)
        if parsed is None:
            return self._bad_range(target)
        sheet, c1, r1, c2, r2 = parsed
        rows = [row[c1 : c2 + 1] for row in self.sheets[sheet][r1 : r2 + 1]]
        body: dict[str, Any] = {"range": f"{sheet}!{_letters(c1)}{r1 + 1}:{_letters(c2)}{r2 + 1}",
                                "majorDimension": "ROWS"}  # fmt: skip
        if any(rows):
            body["values"] = rows  # Google leaves values out of an empty range
        return Reply(200, body)

    def _write(self, request: Request, target: str, *, append: bool) -> Reply:
        option = request.query.get("valueInputOption", [""])[0]
        if option not in ("RAW", "USER_ENTERED"):
            return google_error(400, "INVALID_ARGUMENT", "Invalid valueInputOption: INPUT_VALUE_OPTION_UNSPECIFIED")
        parsed = self._parse(target)
        if parsed is None:
            return self._bad_range(target)
        sheet, c1, r1, _, _ = parsed
        values: list[list[Any]] = request.json()["values"]
        grid = self.sheets[sheet]
        start = len(grid) if append else r1
        for i, row in enumerate(values):
            while len(grid) <= start + i:
                grid.append([])
            line = grid[start + i]
            while len(line) < c1 + len(row):
                line.append("")
            line[c1 : c1 + len(row)] = [v if isinstance(v, str) else str(v) for v in row]
        width = max((len(r) for r in values), default=0)
        updated = {
            "spreadsheetId": SPREADSHEET_ID,
            "updatedRange": f"{sheet}!{_letters(c1)}{start + 1}:{_letters(c1 + width - 1)}{start + len(values)}",
            "updatedRows": len(values), "updatedColumns": width, "updatedCells": sum(len(r) for r in values),
        }  # fmt: skip
        if append:
            table = f"{sheet}!A1:{_letters(max(len(r) for r in grid) - 1)}{start}"
            return Reply(200, {"spreadsheetId": SPREADSHEET_ID, "tableRange": table, "updates": updated})
        return Reply(200, updated)
