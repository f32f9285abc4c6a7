"""The os sandbox's hardening: a fixed environment that no host login file or variable reaches, one memory and
process cap per episode (cgroups, or the stated fallback) with admission against the host's MemAvailable, and warm
pools of fresh sandboxes."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from conftest import unavailable

from agentinstruct.builders.os import admission as admission_module
from agentinstruct.builders.os import cgroups, sandbox
from agentinstruct.builders.os import pool as pool_module
from agentinstruct.builders.os.admission import Admission
from agentinstruct.builders.os.builder import OsBuilder
from agentinstruct.builders.os.errors import SandboxUnavailable
from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.pool import SandboxPool
from agentinstruct.builders.os.sandbox import ETC_ENTRIES, ETC_FILES, open_sandbox
from agentinstruct.collection.collect import build_split
from agentinstruct.filters.base import FilterPipeline, RewardFilter

FAST = Limits(command_timeout=10.0, exec_timeout=10.0)
# The documented environment (sandbox.py's docstring, the README): every process starts with exactly this, and
# `env` in the agent's shell shows it plus what bash sets itself.
ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root", "USER": "root",
       "LOGNAME": "root", "SHELL": "/bin/bash", "TERM": "xterm", "LANG": "C.UTF-8"}
SHELL_ENV = set(ENV) | {"PWD", "OLDPWD", "SHLVL", "_"}


def mem_available_mb() -> float:
    return admission_module._meminfo_mb("MemAvailable")


def cgroups_or_unavailable() -> cgroups._CgroupParents:
    parents, why = cgroups.episode_parents()
    if parents is None:
        unavailable(f"this host gives the sandbox no cgroup: {why}")
    return parents


def our_cgroups(parents: cgroups._CgroupParents) -> set[str]:
    """Episode cgroups of this test process that exist now."""
    return {d.name for parent in {parents.memory, parents.pids} - {None} for d in parent.iterdir()
            if d.name.startswith(f"{cgroups.CGROUP_PREFIX}-{os.getpid()}-")}


# ---------------------------------------------------------------------------------------------- environment
LOGIN_FILES = ("profile", "profile.d", "bash.bashrc", "environment", "skel", "security", "login.defs", "inputrc",
               "default", "bash_completion.d")


def test_no_host_login_configuration_is_on_the_copy_list():
    assert not set(ETC_ENTRIES) & set(LOGIN_FILES)
    # The sandbox writes its own instead, the same on every host.
    assert {"profile", "bash.bashrc", "environment", "login.defs", "skel/.profile", "skel/.bashrc"} <= set(ETC_FILES)


@pytest.fixture
def host_etc():
    """An empty stand-in for the host's /etc, readable by the sandbox's bwrap (an unprivileged host uid when the
    tests run as root, which cannot enter pytest's private tmp_path)."""
    etc = Path(tempfile.mkdtemp(prefix="host-etc-"))
    etc.chmod(0o755)
    yield etc
    shutil.rmtree(etc)


def test_planted_host_login_files_and_host_variables_never_reach_the_sandbox(sandbox_backend, host_etc, monkeypatch):
    # A host /etc of our own (the real one stays as it is): the listed entries link to the real ones, `issue` is a
    # marker that shows this /etc was the one read, and every login file carries a planted variable.
    etc = host_etc
    for name in ETC_ENTRIES:
        if (Path("/etc") / name).exists() and name != "issue":
            (etc / name).symlink_to(Path("/etc") / name)
    (etc / "issue").write_text("host-etc-marker\n")
    planted = {
        "profile": "export PLANTED_PROFILE=leak\n",
        "profile.d/zz-planted.sh": "export PLANTED_PROFILE_D=leak\n",
        "bash.bashrc": "export PLANTED_BASHRC=leak\n",
        "environment": "PLANTED_ENVIRONMENT=leak\n",
        "skel/.bashrc": "export PLANTED_SKEL=leak\n",
        "skel/.profile": "export PLANTED_SKEL_PROFILE=leak\n",
        "security/pam_env.conf": "PLANTED_PAM_ENV DEFAULT=leak\n",
        "default/locale": "PLANTED_LOCALE=leak\n",
        "login.defs": "ENV_SUPATH PATH=/planted\n",
        "inputrc": "# PLANTED_INPUTRC\n",
    }
    for name, text in planted.items():
        (etc / name).parent.mkdir(parents=True, exist_ok=True)
        (etc / name).write_text(text)
    monkeypatch.setattr(sandbox, "HOST_ETC", etc)
    monkeypatch.setenv("PLANTED_HOST_VARIABLE", "leak")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-leak")
    with open_sandbox(sandbox_backend, FAST) as box:
        assert box.shell("cat /etc/issue").text == "host-etc-marker\n"
        shell_env = box.shell("env -0 | tr '\\0' '\\n' | cut -d= -f1 | sort").text.split()
        assert set(shell_env) == SHELL_ENV, shell_env
        exec_env = box.exec(["env"]).text.splitlines()
        assert dict(line.split("=", 1) for line in exec_env) == ENV
        login = box.exec(["bash", "--login", "-i", "-c", "env; umask"])
        everything = box.shell("cat /etc/profile /etc/bash.bashrc /etc/environment /etc/default/locale "
                               "/etc/login.defs /etc/security/pam_env.conf /root/.profile /root/.bashrc; "
                               "ls -A /etc/profile.d; ls /etc/inputrc 2>&1").text
        for text in (" ".join(shell_env), login.text, everything):
            assert "PLANTED" not in text and "leak" not in text and "/planted" not in text
        assert box.shell("cat /etc/profile").text == ETC_FILES["profile"]
        assert login.text.rstrip().endswith("0022")
        if os.geteuid() == 0:  # su reads /etc/environment, pam_env.conf, default/locale and login.defs
            out = box.shell("useradd -m jack && su - jack -c env")
            assert "PLANTED" not in out.text and "leak" not in out.text and "LANG=C.UTF-8" in out.text, out.text


def test_every_writable_place_shares_the_one_disk_cap_and_dev_has_no_room(sandbox_backend):
    with open_sandbox(sandbox_backend, Limits(command_timeout=20.0, disk_mb=32)) as box:
        assert "No space left on device" in box.shell("head -c 1M /dev/zero > /dev/big").text
        out = box.shell("head -c 20M /dev/zero > /tmp/a; for f in /dev/shm/b /usr/c /root/d; do "
                        "head -c 20M /dev/zero 2>&1 > $f | grep -c 'No space'; done")
        assert out.text.split() == ["1", "1", "1"], out.text  # /tmp took most of the 32 MiB: the rest is full
        assert box.shell("rm /tmp/a && head -c 20M /dev/zero > /dev/shm/b && echo room again").text == "room again\n"


# ---------------------------------------------------------------------------------------------- memory: cgroups
def test_each_sandbox_has_its_own_capped_cgroup_removed_when_it_closes(sandbox_backend):
    parents = cgroups_or_unavailable()
    limits = Limits(memory_total_mb=300, disk_mb=100, processes=40)
    with open_sandbox(sandbox_backend, limits) as box:
        memory = box._cgroup.dirs[0]
        cap = (memory / ("memory.limit_in_bytes" if parents.version == 1 else "memory.max")).read_text()
        assert int(cap) == 300 * 1024 * 1024
        members = (memory / "cgroup.procs").read_text().split()
        assert len(members) >= 4  # bwrap, its init, the supervisor, the shell: all of them inside
        if parents.pids is not None:
            assert (box._cgroup.dirs[-1] / "pids.max").read_text().strip() == "43"
        assert box.shell("df -m / | awk 'NR == 2 {print $2}'").text.strip() == "100"
        dirs = list(box._cgroup.dirs)
    assert not any(d.exists() for d in dirs)


def test_the_process_cap_counts_every_user_of_the_episode(sandbox_backend):
    if os.geteuid() != 0:
        pytest.skip("a full uid range is mapped only when the host runs the sandbox as root")
    if cgroups_or_unavailable().pids is None:
        unavailable("this host gives the sandbox no pids cgroup")
    with open_sandbox(sandbox_backend, Limits(processes=30, command_timeout=15.0)) as box:
        # RLIMIT_NPROC counts per user, so 2 users would get 30 each; the cgroup caps the episode at 30 in all.
        # jack forks from python, which reports EAGAIN at once (bash retries a failed fork for half a minute);
        # the children that do start close their output, so nothing waits on them.
        forks = ("import os, time\nfailed = 0\nfor _ in range(20):\n    try:\n        pid = os.fork()\n"
                 "    except BlockingIOError:\n        failed += 1\n        continue\n    if pid == 0:\n"
                 "        os.close(1); os.close(2); time.sleep(100); os._exit(0)\nprint(failed)\n")
        box.exec(["useradd", "jack"])
        out = box.shell("for i in $(seq 20); do sleep 100 >/dev/null 2>&1 & done; "
                        f"su jack -s /bin/sh -c \"python3 -c '{forks}'\"")
        assert int(out.text.split()[-1]) > 0, out.text


def fake_proc(tmp_path: Path, cgroup: str, mountinfo: list[str]) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text("".join(line + "\n" for line in mountinfo))
    return proc


def test_our_cgroups_are_found_in_v1_and_v2_mounts(tmp_path):
    proc = fake_proc(tmp_path, "8:pids:/\n4:memory:/jobs/build\n1:cpu,cpuacct:/\n0::/user.slice/app.scope\n", [
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory",
        "31 25 0:27 / /sys/fs/cgroup/pids rw,relatime shared:10 - cgroup cgroup rw,pids",
        "32 25 0:28 /user.slice /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
        "33 25 0:29 / /my\\040mounts/cpu rw - cgroup cgroup rw,cpu,cpuacct",
    ])
    v1, v2 = cgroups._own_cgroup_dirs(proc)
    assert v1 == {"memory": Path("/sys/fs/cgroup/memory/jobs/build"), "pids": Path("/sys/fs/cgroup/pids"),
                  "cpu": Path("/my mounts/cpu"), "cpuacct": Path("/my mounts/cpu")}
    assert v2 == Path("/sys/fs/cgroup/unified/app.scope")  # the mount shows only /user.slice


def test_cgroup_v2_without_delegation_means_the_fallback_and_says_why(tmp_path):
    tree = tmp_path / "cgroup"
    (tree / "build.scope").mkdir(parents=True)
    (tree / "build.scope" / "cgroup.subtree_control").write_text("\n")  # nothing enabled for children
    proc = fake_proc(tmp_path, "0::/build.scope\n", [f"40 25 0:30 / {tree} rw - cgroup2 cgroup2 rw"])
    parents, why = cgroups._find_cgroups(proc)
    assert parents is None
    assert why == f"cgroup v2 without delegation: memory is not enabled in {tree}/build.scope/cgroup.subtree_control"


def test_a_v2_episode_cgroup_gets_its_memory_swap_and_pids_caps(tmp_path):
    parent = tmp_path / "build.scope"
    parent.mkdir()
    group = cgroups.Cgroup.create(cgroups._CgroupParents(2, parent, parent), Limits(memory_total_mb=300, disk_mb=100,
                                                                                        processes=50))
    (d,) = group.dirs
    assert (d / "memory.max").read_text() == str(300 * 1024 * 1024) and (d / "pids.max").read_text() == "53"
    assert group.procs() == [str(d / "cgroup.procs")]


def test_leftover_cgroups_of_a_killed_build_are_removed(sandbox_backend):
    parents = cgroups_or_unavailable()
    code = ("import time\nfrom agentinstruct.builders.os.sandbox import open_sandbox\n"
            f"box = open_sandbox({sandbox_backend!r})\n"
            "print(' '.join(str(d) for d in box._cgroup.dirs), flush=True)\ntime.sleep(120)\n")
    build = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    dirs = [Path(d) for d in build.stdout.readline().split()]
    build.kill()
    build.wait()
    build.stdout.close()
    assert dirs and all(d.exists() for d in dirs)
    # Its sandbox died with it (--die-with-parent); the empty cgroups stayed behind until the next build looks.
    deadline = time.monotonic() + 10
    while (dirs[0] / "cgroup.procs").read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (dirs[0] / "cgroup.procs").read_text().strip() == ""
    cgroups._remove_leftovers(parents)
    assert not any(d.exists() for d in dirs)


def test_without_a_cgroup_the_fallback_limits_bound_the_episode(sandbox_backend, monkeypatch):
    monkeypatch.setattr(cgroups, "episode_parents", lambda: (None, "none in this test"))
    admission = Admission(floor_mb=0)
    monkeypatch.setattr(admission_module, "ADMISSION", admission)
    assert cgroups.memory_isolation().startswith("no cgroup (none in this test)")
    with open_sandbox(sandbox_backend, FAST) as box:
        assert box.limits == FAST.without_cgroup() and box._cgroup is None
        assert admission.reserved_mb() == box.limits.memory_total_mb == 4416
        out = box.shell("ulimit -u; ulimit -v; df -m / | awk 'NR == 2 {print $2}'")
        assert out.text.split() == ["16", str(256 * 1024), "256"]
    assert admission.reserved_mb() == 0


# ---------------------------------------------------------------------------------------------- memory: admission
@pytest.fixture
def host_memory(monkeypatch):
    """MemAvailable as the test sets it (MiB)."""
    memory = {"MemAvailable": 10000.0, "MemTotal": 16000.0}
    monkeypatch.setattr(admission_module, "_meminfo_mb", lambda key: memory[key])
    return memory


def test_admission_waits_while_one_more_would_go_below_the_floor(host_memory):
    admission = Admission(floor_mb=1000, wait_s=10)
    first, second = admission.reserve(4000), admission.reserve(4000)
    assert admission.headroom_mb() == 1000
    threading.Timer(0.3, first.release).start()
    started = time.monotonic()
    third = admission.reserve(4000)  # admitted once the first is released
    assert time.monotonic() - started >= 0.25 and admission.reserved_mb() == 8000
    # What a sandbox holds already is in MemAvailable: only the rest of its budget counts against the headroom.
    second.measure = lambda: 3000.0
    host_memory["MemAvailable"] = 7000.0
    assert admission.headroom_mb() == 7000 - 1000 - 1000 - 4000
    second.release()
    third.release()
    assert admission.reserved_mb() == 0


def test_admission_refuses_when_not_even_one_fits_and_gives_up_after_waiting(host_memory):
    assert Admission().floor_mb == 1600  # 10% of MemTotal, at least 1 GiB
    with pytest.raises(SandboxUnavailable, match=r"not enough memory for one sandbox: it needs 9500 MiB .* 10000 MiB"):
        Admission(floor_mb=1000).reserve(9500)
    patient = Admission(floor_mb=1000, wait_s=0.2)
    held = patient.reserve(5000)
    with pytest.raises(SandboxUnavailable, match="within 0.2 s: 1 running hold 5000 MiB; lower --concurrency"):
        patient.reserve(5000)
    stop = threading.Event()
    stop.set()
    assert patient.reserve(5000, stop) is None  # a closing pool's starter stops waiting
    held.release()


HOG = """head -c 4G /dev/zero > /tmp/fill; echo "disk: $?"; python3 -c '
chunks = []
while True:
    chunks.append(b"x" * (16 << 20))
'; echo "memory: $?\""""
MANY_HOGS = """head -c 4G /dev/zero > /tmp/fill; echo "disk: $?"; for i in 1 2 3 4 5 6; do python3 -c '
chunks = []
while True:
    chunks.append(b"x" * (8 << 20))
' & done; killed=0; for job in $(jobs -p); do wait "$job" || killed=$((killed + 1)); done; echo "killed: $killed\""""


def test_memory_and_disk_hogs_stay_in_their_caps_and_the_host_keeps_its_floor(sandbox_backend, tmp_path,
                                                                              monkeypatch):
    cgroups_or_unavailable()
    budget, fit, n = 256, 5, 12
    limits = Limits(memory_total_mb=budget, disk_mb=128, command_timeout=60.0, exec_timeout=60.0)
    # A floor that lets about `fit` hogs run at once here (more if other processes free memory meanwhile): the
    # admission, not the host, has to hold the others back.
    floor = mem_available_mb() - (fit + 0.75) * budget
    admission = Admission(floor_mb=floor)
    monkeypatch.setattr(admission_module, "ADMISSION", admission)
    tasks = [{"description": f"Hog {i}: fill the disk, then the memory.",
              "evaluation": {"example": HOG if i % 2 == 0 else MANY_HOGS,
                             "check": [{"language": "bash", "code": "test -s /tmp/fill"}]}} for i in range(n)]
    (tmp_path / "hogs.json").write_text(json.dumps(tasks))
    builder = OsBuilder(backend=sandbox_backend, limits=limits)
    lowest, most_held, done = [float("inf")], [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            lowest[0] = min(lowest[0], mem_available_mb())
            most_held[0] = max(most_held[0], admission.reserved_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    started = time.monotonic()
    try:
        outcome = asyncio.run(build_split(builder, builder.load_tasks(str(tmp_path / "hogs.json")), tmp_path / "out",
                                          pipeline=FilterPipeline([RewardFilter(1.0)]), policy="reference",
                                          concurrency=n, progress=False))
    finally:
        done.set()
        sampler.join()
    seconds = time.monotonic() - started
    print(f"\n{n} hogs of {budget} MiB in {seconds:.1f} s, at most {most_held[0] // budget} admitted at once; "
          f"lowest MemAvailable {lowest[0]:.0f} MiB, floor {floor:.0f} MiB")
    assert not outcome.errors and len(outcome.records) == n and outcome.kept == n
    for record in outcome.records:
        seen = record["conversations"][-2]["value"]  # what the hog's command printed
        assert "No space left on device" in seen and "disk: 1" in seen, seen
        assert "memory: 137" in seen or "killed: 6" in seen, seen  # OOM-killed at the cap, every one of them
    assert lowest[0] >= floor
    assert most_held[0] < n * budget  # some waited for others to end
    assert admission.reserved_mb() == 0 and our_cgroups(cgroups.episode_parents()[0]) == set()


# ---------------------------------------------------------------------------------------------- warm pool
def test_a_pool_hands_out_ready_sandboxes_at_once_each_fresh_and_closes_the_rest(sandbox_backend):
    with SandboxPool(sandbox_backend, FAST, size=2) as pool:
        seen, times = set(), []
        for _ in range(3):
            assert pool.fill(30) == 2
            started = time.perf_counter()
            box = pool.acquire()
            times.append(time.perf_counter() - started)
            with box:
                # Never used before: nothing of an earlier episode, its own namespaces.
                assert box.shell("ls /root/mark 2>&1; echo x > /root/mark").text.startswith("ls: cannot access")
                ns = box.shell("readlink /proc/self/ns/pid").text
                assert ns not in seen
                seen.add(ns)
        assert statistics.median(times) < 0.010, times
        pool.fill(30)
        ready = list(pool._ready)
    assert all(not box.running() for box in ready)
    parents = cgroups.episode_parents()[0]
    if parents is not None:
        assert our_cgroups(parents) == set()


def test_a_pool_skips_a_sandbox_that_died_while_ready_and_reports_a_failed_start(sandbox_backend, monkeypatch):
    with SandboxPool(sandbox_backend, FAST, size=1) as pool:
        pool.fill(30)
        dead = pool._ready[0]._proc
        os.killpg(dead.pid, 9)
        dead.wait()
        with pool.acquire() as box:
            assert box.shell("echo alive").text == "alive\n"

        def broken(*args, **kwargs):
            raise SandboxUnavailable("no start in this test")

        monkeypatch.setattr(pool_module, "admit_and_start", broken)
        pool.fill(30)
        while pool.ready():  # the one started before the patch
            pool.acquire().close()
        with pytest.raises(SandboxUnavailable, match="no start in this test"):
            pool.acquire(timeout=30)


def test_the_os_builder_takes_its_sandboxes_from_a_warm_pool_while_a_build_runs(sandbox_backend):
    builder = OsBuilder(backend=sandbox_backend, limits=FAST)
    with builder.warm(2):
        pool = builder._warm.pool(builder.backend, FAST, builder.docker_image)
        pool.fill(30)
        started = time.perf_counter()
        with builder.open_sandbox() as box:
            assert time.perf_counter() - started < 0.010
            assert box.shell("echo warm").text == "warm\n"
        ready = list(pool._ready)
    assert builder._warm is None and all(not box.running() for box in ready)
    with builder.open_sandbox() as box:  # outside a build: started there and then
        assert box.running()
