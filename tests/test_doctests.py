"""The docstring examples of every module in the package run, and pass.

An example that needs a server, a model, a sandbox, a GPU or the network is marked ``# doctest: +SKIP``, and the
line that introduces it says why: ``Example (needs a model server):`` (``test_every_skipped_example_says_why``).
Everything else runs here, in a scratch working directory, so examples that write files leave nothing behind.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re

import pytest

# A program, not a library: the sandbox runs it as a script, and it reads its limits from argv as it starts.
NOT_IMPORTABLE = {"agentinstruct.builders.os.supervisor"}
# builders/, training/ and schemas/ install under the package through package_dir, outside agentinstruct/'s
# folder in a checkout, so each is walked from its own path.
ROOTS = ("agentinstruct", "agentinstruct.builders", "agentinstruct.training", "agentinstruct.schemas")
MODULES = sorted(
    {root for root in ROOTS}
    | {info.name for root in ROOTS
       for info in pkgutil.walk_packages(importlib.import_module(root).__path__, root + ".")
       if info.name not in NOT_IMPORTABLE and not info.name.endswith("__main__")}
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in finder.find(module, name):
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} docstring examples failed (see above)"


# The line that introduces a skipped example: "Example (needs WHAT):", WHAT saying what it needs that the test
# machine lacks (a model server, a Hub server, a model's tokenizer, bubblewrap, ...).
SKIP_REASON = re.compile(r"^Examples? \(needs [^)]+\):$")


def test_every_skipped_example_says_why():
    """An example is skipped only where it needs a server, a model, a sandbox, a GPU or the network, with the reason.

    ``# doctest: +SKIP`` cannot carry text, so the reason goes where a reader sees it: the nearest line above a
    skipped example that starts with "Example" must read ``Example (needs ...):``, e.g. ``Example (needs a model
    server):`` or ``Example (needs bubblewrap):``. Examples that need only a file or a dataset dir make it
    themselves (the working directory is a scratch one) and run.
    """
    finder = doctest.DocTestFinder(exclude_empty=True)
    unexplained = []
    for name in MODULES:
        for test in finder.find(importlib.import_module(name), name):
            lines = test.docstring.splitlines()
            for example in test.examples:
                if not example.options.get(doctest.SKIP):
                    continue
                intro = next((line.strip() for line in reversed(lines[:example.lineno])
                              if line.strip().startswith("Example")), None)
                if intro is None or not SKIP_REASON.match(intro):
                    where = f"{test.filename}:{test.lineno + example.lineno + 1}" if test.lineno is not None else test.name
                    unexplained.append(f"{where} ({test.name}): {intro or 'no Example line above it'}")
    assert not unexplained, ("skipped examples whose Example line does not say '(needs ...)':\n"
                             + "\n".join(unexplained))


def test_every_package_is_walked():
    # walk_packages follows agentinstruct.builders/training/schemas through package_dir: none may be missed
    for package in ("agentinstruct.builders.os", "agentinstruct.builders.db", "agentinstruct.builders.kg",
                    "agentinstruct.training", "agentinstruct.schemas", "agentinstruct.records"):
        assert any(m == package or m.startswith(package + ".") for m in MODULES), package
