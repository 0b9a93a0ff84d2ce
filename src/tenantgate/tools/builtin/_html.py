"""HTML to readable text with the standard library's tolerant parser: what a person would read.

Scripts, styles, templates, embedded objects and hidden elements (``hidden``,
``aria-hidden="true"``, ``display:none``, ``visibility:hidden``) are dropped: they are code
and markup, not content, and a favourite place for text aimed at a model rather than a
reader. Block elements become line breaks; the ``<title>`` is kept apart.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

__all__ = ["html_to_text"]

# Content of these elements is never text for a reader.
_SKIP = frozenset(
    {"script", "style", "noscript", "template", "svg", "math", "iframe", "object", "embed", "canvas", "head", "select"}
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"}
)
_BLOCK = frozenset(
    {
        "address", "article", "aside", "blockquote", "br", "dd", "details", "div", "dl", "dt", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li",
        "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tr", "ul",
    }
)  # fmt: skip
_INVISIBLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden")
_WHITESPACE = re.compile(r"\s+")
_SPACES = re.compile(r"[ \t\r\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _hidden(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "hidden" or (name == "aria-hidden" and (value or "").strip().lower() == "true"):
            return True
        if name == "style" and value and _INVISIBLE.search(value.lower()):
            return True
    return False


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skipping: list[str] = []
        self._in_title = False
        self._pre = 0  # inside <pre>, line breaks are content

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag == "body":
            self._skipping.clear()  # an unclosed <head> ends where the body starts
        elif self._skipping:
            if tag not in _VOID:
                self._skipping.append(tag)  # nested inside skipped content: track it to find the end
        elif tag in _SKIP or _hidden(attrs):
            if tag not in _VOID:
                self._skipping.append(tag)  # hidden content is not what a reader sees
        elif tag in _BLOCK:
            self._pre += tag == "pre"
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif self._skipping:
            if tag in self._skipping:
                # Close up to the matching tag: HTML lets inner elements go unclosed.
                del self._skipping[len(self._skipping) - 1 - self._skipping[::-1].index(tag) :]
        elif tag in _BLOCK:
            self._pre -= tag == "pre" and self._pre > 0
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skipping:
            # Source line breaks are only spaces in HTML, except in <pre>.
            self.parts.append(data if self._pre else _WHITESPACE.sub(" ", data))


def html_to_text(html: str) -> tuple[str | None, str]:
    """``(title, text)`` of an HTML document; whitespace collapsed, paragraphs kept."""
    reader = _Reader()
    reader.feed(html)
    reader.close()
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(reader.parts).split("\n"))
    text = _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
    title = _SPACES.sub(" ", " ".join(reader.title)).strip() or None
    return title, text
