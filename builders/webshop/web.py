"""The shop as HTML pages a person (or a browser driver) can use: ``agentinstruct serve webshop``.

Every page is the same ``shop.Page`` the text environment shows, rendered element by element, and every button
posts the very action string the text environment takes (``click[Buy Now]``, ``click[B0ABC12345]``, ``search[...]``
from the search box), so a purchase made in the browser gets the reward the same actions get in text mode.

The markup is kept stable for tools that record tasks on these pages: the search box is ``#search_input`` with
``#search_button``; every clickable is a ``button`` whose ``value`` is its action, with class ``btn`` (page
buttons), ``product-link`` (a result's ASIN) or ``option`` (``data-group`` names the option group, ``aria-pressed``
says whether it is chosen); the instruction is ``#instruction-text``; the score on the done page is ``#reward``.

Routes: ``GET /`` lists goals; ``GET /goal/N`` starts a session for goal N and redirects to ``/session/ID``, which
shows the session's page; ``POST /session/ID`` (form field ``action``, and ``keywords`` for a search) acts.
"""

from __future__ import annotations

import html
import itertools
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from .shop import Element, Page, Shop, ShopSession

_STYLE = """body{font-family:sans-serif;max-width:60em;margin:2em auto}button{margin:.2em;cursor:pointer}
.product-link{font-weight:bold}.option[aria-pressed=true]{background:#2a6;color:#fff}
#instruction-text{background:#eef;padding:.5em}"""


def _element(e: Element, session: ShopSession) -> str:
    text = html.escape(e.text)
    if e.role == "search":
        return ('<input id="search_input" name="keywords" type="text" placeholder="Search..." autofocus> '
                '<button id="search_button" class="btn" type="submit" name="action" value="search">Search</button>')
    if e.role in ("button", "link"):
        kind = "btn" if e.role == "button" else "product-link"
        return (f'<button class="{kind}" type="submit" name="action" '
                f'value="{html.escape(f"click[{e.text}]")}">{text}</button>')
    if e.role == "option":
        pressed = "true" if session.options.get(e.group) == e.text else "false"
        return (f'<button class="option" type="submit" name="action" data-group="{html.escape(e.group)}" '
                f'aria-pressed="{pressed}" value="{html.escape(f"click[{e.text}]")}">{text}</button>')
    if e.role == "option-group":
        return f'<h4 class="option-group">{text}</h4>'
    if e.role == "heading":
        return f"<h3>{text}</h3>"
    if e.role == "price":
        return f'<p class="price">{text}</p>'
    return f"<p>{text}</p>"


def render_page(page: Page, session: ShopSession, sid: str) -> str:
    """One page as an HTML document whose buttons post their actions to ``/session/{sid}``."""
    parts: list[str] = []
    elements = list(page.elements)
    if page.kind == "done":
        parts = [f"<h2>{html.escape(elements[0].text)}</h2>",
                 f'<h3>{html.escape(elements[1].text)} <span id="reward">{html.escape(elements[2].text)}</span></h3>',
                 '<p><a href="/">Another goal</a></p>']
    else:
        # The instruction label and text form one block, as on WebShop's pages.
        labels = [e for e in elements if e.role == "instruction"]
        rest = [e for e in elements if e.role != "instruction"]
        if page.kind == "search":
            parts.append(f"<h2>{html.escape(rest.pop(0).text)}</h2>")
        parts.append(f'<div id="instruction-text"><b>{html.escape(labels[0].text)}</b> '
                     f"{html.escape(labels[1].text)}</div>")
        parts += [_element(e, session) for e in rest]
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>WebShop</title><style>{_STYLE}</style>'
            f'</head><body data-page="{page.kind}">\n<form id="page" method="post" action="/session/{sid}">\n'
            f"{body}\n</form>\n</body></html>\n")


def _index(shop: Shop, goals: list[int]) -> str:
    items = "\n".join(f'<li><a class="goal" href="/goal/{n}">goal {n}</a>: '
                      f'{html.escape(shop.catalogue.goals[n]["instruction_text"])}</li>' for n in goals[:50])
    return (f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>WebShop</title><style>{_STYLE}</style>'
            f"</head><body>\n<h2>WebShop</h2>\n<p>Pick a goal ({len(goals)} in all; /goal/N opens goal N):</p>\n"
            f"<ol>\n{items}\n</ol>\n</body></html>\n")


class ShopServer(ThreadingHTTPServer):
    """An HTTP server over one shop; sessions live in memory for the server's lifetime."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], shop: Shop, goals: list[int]) -> None:
        super().__init__(address, _Handler)
        self.shop, self.goals = shop, goals
        self.sessions: dict[str, ShopSession] = {}
        self.lock = threading.Lock()  # the shop's search cache and the sessions are shared by request threads
        self._ids = itertools.count(1)

    def start(self, n: int) -> str:
        """Open a session for goal ``n``; its id."""
        with self.lock:
            sid = f"s{next(self._ids)}"
            self.sessions[sid] = self.shop.session(self.shop.catalogue.goals[n])
        return sid


class _Handler(BaseHTTPRequestHandler):
    server: ShopServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would flood a terminal and the tests' output."""

    def _send(self, status: int, body: str = "", location: str | None = None) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        parts = self.path.split("?")[0].strip("/").split("/")
        if parts == [""]:
            return self._send(HTTPStatus.OK, _index(self.server.shop, self.server.goals))
        if len(parts) == 2 and parts[0] == "goal" and parts[1].isdigit():
            n = int(parts[1])
            if n not in self.server.goals:
                return self._send(HTTPStatus.NOT_FOUND, f"<p>goal {n} is not served here</p>")
            return self._send(HTTPStatus.SEE_OTHER, location=f"/session/{self.server.start(n)}")
        if len(parts) == 2 and parts[0] == "session" and parts[1] in self.server.sessions:
            session = self.server.sessions[parts[1]]
            with self.server.lock:
                body = render_page(session.page(), session, parts[1])
            return self._send(HTTPStatus.OK, body)
        self._send(HTTPStatus.NOT_FOUND, "<p>not found</p>")

    def do_POST(self) -> None:
        parts = self.path.strip("/").split("/")
        if not (len(parts) == 2 and parts[0] == "session" and parts[1] in self.server.sessions):
            return self._send(HTTPStatus.NOT_FOUND, "<p>not found</p>")
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode("utf-8"))
        action = (form.get("action") or [""])[0]
        if action == "search":
            action = f"search[{(form.get('keywords') or [''])[0]}]"
        with self.server.lock:
            self.server.sessions[parts[1]].step(action)
        self._send(HTTPStatus.SEE_OTHER, location=f"/session/{parts[1]}")


def serve(shop: Shop, goals: list[int], host: str = "127.0.0.1", port: int = 3000) -> ShopServer:
    """A server for ``goals`` (goal numbers) of ``shop``, bound and ready: call ``serve_forever`` (or run it in a
    thread) and ``shutdown`` when done. Port 0 picks a free port (``server.server_address``).

    Example (a session on the embedded shop):
        >>> from agentinstruct.builders.webshop.builder import WebshopBuilder
        >>> b = WebshopBuilder()
        >>> server = serve(b.shop, [80], port=0)
        >>> sid = server.start(80)
        >>> session = server.sessions[sid]
        >>> 'id="search_input"' in render_page(session.page(), session, sid)
        True
        >>> server.server_close()
    """
    return ShopServer((host, port), shop, goals)
