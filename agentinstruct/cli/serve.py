"""``agentinstruct serve webshop``: the webshop split's shop as pages a person can open in a browser.

The pages are the builder's own engine (same catalogue, search and reward as ``agentinstruct build webshop``),
rendered as HTML (``Builder.web_server``; the webshop builder's pages are in its ``web`` module). The shop takes the build's catalogue flags
(``--products/--attributes/--instructions``, ``--search``, ``--goals``).
"""

from __future__ import annotations

import argparse
import sys

from agentinstruct.builders import BUILDERS

def _run(args: argparse.Namespace) -> int:
    from agentinstruct.builders import builder_class

    cls = builder_class(args.split)
    p = argparse.ArgumentParser(prog=f"agentinstruct serve {args.split}")
    p.add_argument("--port", type=int, default=3000, help="port to listen on (default 3000; 0 picks a free one)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    cls.add_arguments(p)
    opts = p.parse_args(args.options)
    builder = cls.from_args(opts)
    try:
        server = builder.web_server(opts.host, opts.port)
    except ValueError as exc:
        print(f"agentinstruct serve: {exc}", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    print(f"{args.split}: open http://{host}:{port}/ (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the CLI."""
    text = "serve a split's environment as web pages (webshop: the shop, with the score at the end)"
    p = sub.add_parser("serve", help=text, description=f"{text}. Run 'agentinstruct serve webshop --help' for the "
                       "options.")
    p.add_argument("split", metavar="SPLIT", choices=list(BUILDERS), help="a registered split whose environment "
                   "has pages (webshop)")
    p.add_argument("options", nargs=argparse.REMAINDER, help="options (see SPLIT --help)")
    p.set_defaults(func=_run)
