"""The sites the mind2web split records its embedded tasks on, each served on 127.0.0.1 while a recording runs.

``shop`` is the webshop split's shop (its builder's ``web_server``: the same catalogue and goals as
``agentinstruct serve webshop``); ``flights`` (Skyhop, a flight search and booking site) and ``restaurant``
(Tablefor, restaurant reservations) are plain HTML and JavaScript pages in this folder, written for this package
and served as static files. Their pages compute everything from the query string with seeded generators (no
clock, no ``Math.random``), so the same actions always meet the same pages.

Each site folder also holds the gold action lists recorded into the split's embedded tasks (``train.json``,
``test.json``; the ``gold`` module reads them).
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: a line per request would flood the recorder's output."""


def static_server(folder: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for the files in ``folder``, bound (port 0 picks a free one) and not yet serving.

    Example:
        >>> server = static_server(HERE / "flights")
        >>> server.server_address[0]
        '127.0.0.1'
        >>> server.server_close()
    """
    server = ThreadingHTTPServer((host, port), functools.partial(_Quiet, directory=str(folder)))
    server.daemon_threads = True
    return server


def _shop(host: str, port: int) -> Any:
    from agentinstruct.builders.webshop.builder import WebshopBuilder

    return WebshopBuilder().web_server(host, port)


SITES: dict[str, Callable[[str, int], Any]] = {
    "shop": _shop,
    "flights": functools.partial(static_server, HERE / "flights"),
    "restaurant": functools.partial(static_server, HERE / "restaurant"),
}
"""Site name -> a function of (host, port) giving its HTTP server, bound and not yet serving."""


@contextlib.contextmanager
def running(site: str) -> Iterator[str]:
    """The base URL of ``site`` while the block runs: a URL is used as it is; a name in ``SITES`` is served on
    127.0.0.1 on a free port and stopped afterwards.

    Example:
        >>> import urllib.request
        >>> with running("restaurant") as url:
        ...     "Tablefor" in urllib.request.urlopen(url + "/index.html").read().decode()
        True
        >>> with running("http://127.0.0.1:9/") as url:
        ...     url
        'http://127.0.0.1:9'
    """
    if "://" in site:
        yield site.rstrip("/")
        return
    if site not in SITES:
        raise ValueError(f"no site {site!r}: give a URL or one of {', '.join(SITES)}")
    server = SITES[site]("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
