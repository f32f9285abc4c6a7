"""Mind2Web-format tasks recorded in a real browser: gold actions played in headless Chromium, one snapshot a step.

Mind2Web's annotators acted on live sites while a recorder kept, before each action, Chrome's DOM snapshot; the
released tasks are those snapshots in its format (``snapshot`` says how a snapshot becomes ``raw_html``,
``cleaned_html`` and candidates). This module does the same on sites served here: for each task of a gold file
(``gold``) it opens the start page, and for each action takes ``DOMSnapshot.captureSnapshot`` over the Chrome
DevTools Protocol (every node carries its ``backendNodeId``, Mind2Web's id space), finds the element the gold
selector names and its ``backendNodeId``, writes the step (the acted-on element is the positive, the page's other
interactive elements the negatives), then carries the action out (fill, select, click, hover, Enter) and waits
for the page to settle.

The browser is Debian's ``/usr/bin/chromium`` driven by Playwright (``playwright install`` cannot download one
here). Ids and uids are stable: ``annotation_id`` and ``action_uid`` are UUIDs derived from the task, and the files
are written with node ids renumbered in page order (``snapshot.renumber``; the browser's own ids depend on what it
did before), so recording a site again writes the same bytes.

``python -m agentinstruct.builders.mind2web.record`` re-records the shipped tasks (``data/recorded/``) from the
gold lists in ``sites/``; ``agentinstruct record mind2web --site URL|NAME --actions FILE --out FILE`` records more.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .gold import OPERATIONS, GoldAction, GoldTask, read_gold
from .sites import HERE as SITES_DIR
from .sites import SITES, running
from .snapshot import raw_tree, renumber, step_fields

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 1000}
"""One window size for every recording: the layout boxes in the records depend on it."""

RECORDED = Path(__file__).parent / "data" / "recorded"
PARTS = ("train", "test")
_NAMESPACE = uuid.UUID("6f0d7a52-3c1e-4b8e-9a57-2d4c1b0e9f13")
_GENERIC_ROLES = frozenset({"", "generic", "none", "StaticText", "InlineTextBox", "paragraph", "Section"})


@contextlib.contextmanager
def chromium(executable: Path = CHROMIUM) -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``) for the block; a missing browser or Playwright is a
    ValueError saying what to install.

    Example (needs Chromium, /usr/bin/chromium):
        >>> with chromium() as browser:  # doctest: +SKIP
        ...     browser.new_page().goto("about:blank")
    """
    if not Path(executable).exists():
        raise ValueError(f"Chromium is not installed at {executable} (Debian: apt-get install chromium; "
                         "`make setup` installs it)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise ValueError("recording needs Playwright: pip install playwright (no `playwright install`: the "
                         "system Chromium is used)") from None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(executable), args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def action_repr(role: str, name: str, op: str, value: str) -> str:
    """Mind2Web's human-readable step: ``[role]  name -> OP`` with ``: value`` for TYPE and SELECT.

    Example:
        >>> action_repr("textbox", "From", "TYPE", "Boston")
        '[textbox]  From -> TYPE: Boston'
        >>> action_repr("button", "Search flights", "CLICK", "")
        '[button]  Search flights -> CLICK'
    """
    return f"[{role}]  {name} -> {op}" + (f": {value}" if value else "")


class _Step:
    """One step on the live page: the snapshot, the target's node id, its role and name."""

    def __init__(self, page: Any, cdp: Any, action: GoldAction, where: str) -> None:
        self.snapshot = cdp.send("DOMSnapshot.captureSnapshot", {"computedStyles": []})
        locator = page.locator(action.selector)
        found = locator.count()
        if found != 1:
            raise ValueError(f"{where}: selector {action.selector!r} matches {found} elements on {page.url}, "
                             "not exactly one")
        self.locator = locator
        # Hand the element to the protocol through a page global (no attribute is added to the DOM, so the
        # snapshot above is the page as the user saw it), then ask for its node id and accessible role and name.
        locator.evaluate("e => { window.__m2wTarget = e; }")
        handle = cdp.send("Runtime.evaluate", {"expression": "window.__m2wTarget"})["result"]["objectId"]
        node = cdp.send("DOM.describeNode", {"objectId": handle})["node"]
        cdp.send("Runtime.evaluate", {"expression": "delete window.__m2wTarget"})
        cdp.send("Runtime.releaseObject", {"objectId": handle})
        self.backend_node_id = str(node["backendNodeId"])
        tag = node["localName"]
        ax = cdp.send("Accessibility.getPartialAXTree", {"backendNodeId": node["backendNodeId"],
                                                          "fetchRelatives": False})["nodes"]
        role = str((ax[0].get("role") or {}).get("value", "")) if ax else ""
        name = str((ax[0].get("name") or {}).get("value", "")) if ax else ""
        self.role = tag if role in _GENERIC_ROLES else role
        self.name = " ".join(name.split())


def _act(locator: Any, action: GoldAction) -> None:
    if action.op == "TYPE":
        locator.fill(action.value)
    elif action.op == "SELECT":
        locator.select_option(label=action.value)
    elif action.op == "HOVER":
        locator.hover()
    elif action.op == "ENTER":
        locator.press("Enter")
    else:
        locator.click()


def record_task(browser: Any, base_url: str, task: GoldTask, where: str, timings: list[float] | None = None
                ) -> dict[str, Any]:
    """One gold task played in a fresh browser context on the site at ``base_url``: a Mind2Web task.
    ``timings`` (if given) gets (snapshot seconds, step seconds) pairs flattened, for the benchmark.

    Example (needs Chromium, /usr/bin/chromium):
        >>> from agentinstruct.builders.mind2web.gold import parse_gold
        >>> gold = parse_gold({"website": "tablefor", "domain": "Travel", "subdomain": "Restaurant", "tasks": [
        ...     {"confirmed_task": "Find Italian food", "start": "/index.html", "actions": [
        ...         {"op": "SELECT", "selector": "#cuisine", "value": "Italian"},
        ...         {"op": "CLICK", "selector": "#find-table"}]}]})
        >>> with chromium() as browser, running("restaurant") as url:  # doctest: +SKIP
        ...     task = record_task(browser, url, gold[0], "example")
        >>> task["action_reprs"]  # doctest: +SKIP
        ['[combobox]  Cuisine -> SELECT: Italian', "[button]  Let's go -> CLICK"]
    """
    annotation_id = str(uuid.uuid5(_NAMESPACE, f"{task.website}\n{task.confirmed_task}\n{task.start}"))
    context = browser.new_context(viewport=VIEWPORT, locale="en-US", timezone_id="UTC")
    try:
        page = context.new_page()
        cdp = context.new_cdp_session(page)
        page.goto(base_url + "/" + task.start.lstrip("/"))
        page.wait_for_load_state("load")
        reprs, actions = [], []
        for j, action in enumerate(task.actions):
            started = time.perf_counter()
            step = _Step(page, cdp, action, f"{where}, action {j}")
            snapped = time.perf_counter()
            try:
                fields = step_fields(raw_tree(step.snapshot), step.backend_node_id)
            except ValueError as exc:
                raise ValueError(f"{where}, action {j} ({action.selector!r}): {exc}") from None
            reprs.append(action_repr(step.role, step.name, action.op, action.value))
            actions.append({"action_uid": str(uuid.uuid5(_NAMESPACE, f"{annotation_id}/{j}")),
                            "raw_html": fields["raw_html"], "cleaned_html": fields["cleaned_html"],
                            "operation": {"op": OPERATIONS[action.op], "original_op": action.op,
                                          "value": action.value},
                            "pos_candidates": fields["pos_candidates"], "neg_candidates": fields["neg_candidates"]})
            _act(step.locator, action)
            page.wait_for_load_state("load")
            if timings is not None:
                timings += [snapped - started, time.perf_counter() - started]
        return {"annotation_id": annotation_id, "website": task.website, "domain": task.domain,
                "subdomain": task.subdomain, "confirmed_task": task.confirmed_task, "action_reprs": reprs,
                "actions": actions}
    finally:
        context.close()


def record_site(site: str, tasks: list[GoldTask], source: str = "<gold>", *, browser: Any = None,
                timings: list[float] | None = None) -> list[dict[str, Any]]:
    """Every gold task recorded on ``site`` (a URL, or a name in ``sites.SITES``, served for the duration).

    Example (needs Chromium, /usr/bin/chromium):
        >>> from agentinstruct.builders.mind2web.gold import read_gold
        >>> tasks = record_site("flights", read_gold(SITES_DIR / "flights" / "test.json"))  # doctest: +SKIP
    """
    with contextlib.ExitStack() as stack:
        if browser is None:
            browser = stack.enter_context(chromium())
        url = stack.enter_context(running(site))
        return [record_task(browser, url, task, f"{source}: task {i} ({task.confirmed_task!r})", timings)
                for i, task in enumerate(tasks)]


def write_tasks(tasks: list[dict[str, Any]], out: Path) -> None:
    """Write tasks as a Mind2Web JSON list, gzipped (mtime 0: the same tasks give the same bytes) when ``out``
    ends in ``.gz``; the file appears whole or not at all.

    Example:
        >>> import tempfile
        >>> out = Path(tempfile.mkdtemp()) / "train_x.json.gz"
        >>> write_tasks([{"annotation_id": "a", "actions": []}], out)
        >>> json.loads(gzip.decompress(out.read_bytes()))
        [{'annotation_id': 'a', 'actions': []}]
    """
    out = Path(out)
    data = json.dumps(tasks, ensure_ascii=False).encode("utf-8")
    if out.name.endswith(".gz"):
        data = gzip.compress(data, compresslevel=9, mtime=0)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)


def record_command(site: str, actions: Path, out: Path) -> str:
    """``agentinstruct record mind2web``: record the gold file ``actions`` on ``site`` into ``out``; a summary.

    Example (needs Chromium, /usr/bin/chromium):
        >>> record_command("flights", SITES_DIR / "flights" / "test.json", Path("/tmp/t.json"))  # doctest: +SKIP
        'recorded 3 tasks (17 steps) from flights into /tmp/t.json in 4.1 s'
    """
    gold = read_gold(Path(actions))
    started = time.perf_counter()
    tasks = record_site(site, gold, str(actions))
    write_tasks(renumber(tasks), Path(out))
    steps = sum(len(t["actions"]) for t in tasks)
    return (f"recorded {len(tasks)} tasks ({steps} steps) from {site} into {out} in "
            f"{time.perf_counter() - started:.1f} s")


def shipped() -> list[tuple[str, Path, Path]]:
    """(site, gold file, recorded file) for every recording the package ships, in a fixed order.

    Example:
        >>> [(site, gold.name, out.name) for site, gold, out in shipped()][:2]
        [('shop', 'train.json', 'train_shop.json.gz'), ('shop', 'test.json', 'test_shop.json.gz')]
    """
    return [(site, SITES_DIR / site / f"{part}.json", RECORDED / f"{part}_{site}.json.gz")
            for site in SITES for part in PARTS]


def main(argv: list[str] | None = None) -> int:
    """Re-record the shipped tasks (all sites, or those named) into ``data/recorded/`` (or ``--out DIR``)."""
    p = argparse.ArgumentParser(prog="python -m agentinstruct.builders.mind2web.record", description=main.__doc__)
    p.add_argument("sites", nargs="*", metavar="SITE", help=f"sites to re-record (default all: {', '.join(SITES)})")
    p.add_argument("--out", type=Path, default=RECORDED, help="folder for the files (default: the package's)")
    args = p.parse_args(argv)
    unknown = sorted(set(args.sites) - set(SITES))
    if unknown:
        p.error(f"no site {', '.join(unknown)} (sites: {', '.join(SITES)})")
    with chromium() as browser:
        for site, gold, out in shipped():
            if args.sites and site not in args.sites:
                continue
            started = time.perf_counter()
            tasks = record_site(site, read_gold(gold), str(gold), browser=browser)
            write_tasks(renumber(tasks), args.out / out.name)
            print(f"{out.name}: {len(tasks)} tasks, {sum(len(t['actions']) for t in tasks)} steps "
                  f"({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
