"""Packaging follows the folders: the wheel holds every module and data file of the tree, and a build runs from it.

The wheel is built from this checkout and installed, without its dependencies and never editable, into a fresh
venv that borrows the test venv's installed dependencies through a ``.pth`` line (that path is not a site dir, so
the test venv's editable-install hook is not loaded there). A subpackage or data file that setup.cfg leaves out
fails here, not for a user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# folder of the checkout -> where it installs
INSTALLED = {"agentinstruct": "agentinstruct", "builders": "agentinstruct/builders",
             "training": "agentinstruct/training", "schemas": "agentinstruct/schemas"}
SKIP_PARTS = {"__pycache__"}


def _tree_files() -> set[str]:
    tracked = subprocess.run(["git", "ls-files", *INSTALLED], cwd=REPO, capture_output=True, text=True, check=True)
    out = set()
    for rel in tracked.stdout.split():
        top, _, rest = rel.partition("/")
        if SKIP_PARTS & set(Path(rel).parts):
            continue
        out.add(f"{INSTALLED[top]}/{rest}")
    return out


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # Built from a copy of the checkout's files (tracked, or new and not ignored): setuptools' build/ folder in the
    # checkout could hold modules the tree no longer has, and they would land in the wheel.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True,
                            text=True, check=True).stdout.split("\n")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, source / rel)
    # No build isolation: the test venv's setuptools builds it, so this needs no network.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(source)], check=True, capture_output=True, text=True)
    (path,) = out.glob("agentinstruct-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "test-venv-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q", str(wheel)],
                   check=True, capture_output=True, text=True)
    return root


def test_wheel_holds_every_file_of_the_package_folders(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = sorted(_tree_files() - names)
    assert not missing, f"setup.cfg leaves these out of the wheel: {missing}"


@pytest.mark.slow
def test_a_build_runs_from_the_installed_wheel(venv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import agentinstruct.builders.kg.store as m; "
                            "import agentinstruct.builders.os.sandbox as s; print(m.__file__); print(s.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where  # the wheel's copy, not the checkout
    out = tmp_path / "out"
    for split in ("kg", "os", "db"):  # each from its embedded tasks, which the wheel must hold
        done = subprocess.run([str(venv / "bin" / "agentinstruct"), "build", split, "--tasks", "embedded",
                               "--policy", "reference", "--limit", "3", "--out", str(out)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert f"default/{split} 3 rows" in done.stdout, done.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["rows"]["all"] == {"os": 3, "db": 3, "kg": 3}
    assert {a["path"] for a in manifest["assets"]} >= {"builds/os.yaml", "builds/db.yaml", "builds/kg.yaml"}
