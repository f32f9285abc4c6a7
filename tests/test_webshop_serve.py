"""``agentinstruct serve webshop`` in a real browser: Debian's headless Chromium driven through Playwright buys
with the same actions as text mode and gets the same reward; the CLI serves pages over HTTP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import unavailable

from agentinstruct.builders.webshop.builder import WebshopBuilder
from agentinstruct.builders.webshop.web import serve

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
BUILDER = WebshopBuilder()


@pytest.fixture(scope="module")
def shop_url():
    tasks = BUILDER.load_tasks("embedded")
    server = serve(BUILDER.shop, [t.payload["goal_index"] for t in tasks], port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        unavailable("Debian chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield browser
        browser.close()


def text_mode(goal_index: int, actions: list[str]) -> float:
    session = BUILDER.shop.session(BUILDER.catalogue.goals[goal_index])
    for action in actions:
        session.step(action)
    return session.reward


def in_browser(page, url: str, goal_index: int, actions: list[str]) -> float:
    page.goto(f"{url}/goal/{goal_index}")
    for action in actions:
        name, argument = re.fullmatch(r"(\w+)\[(.*)\]", action).groups()
        if name == "search":
            page.fill("#search_input", argument)
            page.click("#search_button")
        else:
            page.click(f'button[value="click[{argument}]"]')
        page.wait_for_load_state()
    return float(page.inner_text("#reward"))


def test_the_same_actions_in_the_browser_and_in_text_mode_give_the_same_reward(shop_url, browser):
    page = browser.new_page()
    task = BUILDER.load_tasks("81")[0]
    expert = [f"{a.kind}[{a.argument}]" for a in BUILDER.reference_actions(task)]
    assert in_browser(page, shop_url, 81, expert) == text_mode(81, expert) == 1.0
    # A worse purchase: the first result, no options chosen; the text pages' labels are the buttons' labels.
    results = BUILDER.shop.session(task.payload["goal"])
    results.step(expert[0])
    first = next(e.text for e in results.page().elements if e.role == "link")
    worse = [expert[0], f"click[{first}]", "click[Features]", "click[< Prev]", "click[Buy Now]"]
    reward = text_mode(81, worse)
    assert reward < 1.0 and in_browser(page, shop_url, 81, worse) == pytest.approx(reward)
    # The page shows what the text shows, and the chosen option is marked.
    page.goto(f"{shop_url}/goal/81")
    assert BUILDER.catalogue.goals[81]["instruction_text"] in page.inner_text("#instruction-text")
    page.fill("#search_input", "hiking boots")
    page.click("#search_button")
    assert "Page 1 (Total results: 50)" in page.inner_text("body")
    page.click(".product-link >> nth=0")
    option = page.locator(".option").first
    value = option.inner_text()
    option.click()
    assert page.locator('.option[aria-pressed="true"]').first.inner_text() == value
    page.close()


def test_the_cli_serves_the_shop():
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "agentinstruct.cli", "serve", "webshop", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        url = re.search(r"open (http://\S+/)", line).group(1)
        index = urllib.request.urlopen(url, timeout=30).read().decode()
        assert "320 in all" in index and 'href="/goal/80"' in index
        page = urllib.request.urlopen(url + "goal/80", timeout=30).read().decode()
        assert 'id="search_input"' in page and BUILDER.catalogue.goals[80]["instruction_text"] in page
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "goal/3", timeout=30)  # the evaluation part is not served by default
    finally:
        proc.terminate()
        proc.wait(timeout=30)
