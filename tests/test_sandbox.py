"""The os split's sandbox: a persistent shell that behaves like a terminal, limits that hold, hostile commands
contained, and the host unchanged afterwards (files, processes, environment)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from pathlib import Path

import pytest

from agentinstruct.builders.os import sandbox
from agentinstruct.builders.os.errors import SandboxUnavailable
from agentinstruct.builders.os.limits import Limits
from agentinstruct.builders.os.sandbox import open_sandbox, resolve_backend

REPO = Path(__file__).resolve().parents[1]
FAST = Limits(command_timeout=4.0, exec_timeout=10.0)


@pytest.fixture
def box(sandbox_backend):
    with open_sandbox(sandbox_backend, FAST) as b:
        yield b


def userns_of(b) -> str:
    """The sandbox's user namespace, as the host names it."""
    return b.shell("readlink /proc/self/ns/user").text.strip()


def processes_in(ns: str) -> list[int]:
    """Host pids of live processes in user namespace ``ns`` (zombies are dead; the host's init reaps them)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                if os.readlink(f"/proc/{entry}/ns/user") == ns and stat[stat.rindex(")") + 2] != "Z":
                    found.append(int(entry))
            except OSError:
                continue
    return found


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------------- the terminal
def test_shell_keeps_directory_variables_and_functions_between_commands(box):
    assert box.shell("cd /tmp && export GREETING=hi && f() { echo \"f:$1\"; }").exit_code == 0
    out = box.shell("pwd; echo $GREETING; f x")
    assert out.text == "/tmp\nhi\nf:x\n" and out.exit_code == 0 and not out.timed_out


def test_shell_reports_exit_status_and_stderr_and_survives_bad_syntax(box):
    out = box.shell("ls /nonexistent")
    assert out.exit_code == 2 and "No such file or directory" in out.text
    broken = box.shell("echo 'unbalanced")
    assert broken.exit_code != 0 and "unexpected EOF" in broken.text
    assert box.shell("echo 'multi\nline' && echo $((6 * 7))").text == "multi\nline\n42\n"


def test_shell_exit_starts_a_new_login_shell(box):
    out = box.shell("cd /var; exit 3")
    assert out.note and "new login shell" in out.note
    assert box.shell("pwd").text == "/\n"


def test_starts_as_root_in_a_root_like_layout(box):
    out = box.shell("id -u; echo $HOME; pwd; hostname; test -w /root && test -w /home && test -w /tmp && "
                    "test -w /var/log && echo writable")
    assert out.text.splitlines() == ["0", "/root", "/", "sandbox", "writable"]
    out = box.shell("echo x > /usr/stock.log && mkdir -p /usr/local/bin/sub && echo y >> /etc/hosts && "
                    "mkdir /data && echo ok")
    assert out.text == "ok\n"


def test_useradd_chown_and_su_work(box):
    if os.geteuid() != 0:
        pytest.skip("a full uid range is mapped only when the host runs the sandbox as root")
    out = box.shell("useradd -m -s /bin/bash jack && chown jack /home/jack && su - jack -c 'id -un; pwd'")
    assert out.text.splitlines()[-2:] == ["jack", "/home/jack"], out.text


def test_exec_runs_an_independent_process_with_arguments(box):
    box.shell("cd /tmp && export ONLY_IN_SHELL=1")
    out = box.exec(["bash", "-c", 'echo "$1|$0|$(pwd)|${ONLY_IN_SHELL:-unset}"; echo err >&2; exit 4', "--", "arg"])
    assert out.text == "arg|--|/|unset\nerr\n" and out.exit_code == 4
    assert box.exec(["python3", "-c", "import sys; print(sys.argv[1:])", "a", "b"]).text == "['a', 'b']\n"
    assert box.exec(["no-such-program"]).exit_code == 127


def test_exec_returns_when_the_process_exits_even_if_a_child_holds_its_output(box):
    out = box.exec(["bash", "-c", "sleep 30 & echo started"])
    assert out.text == "started\n" and out.exit_code == 0 and not out.timed_out


# ---------------------------------------------------------------------------------------------- limits
def test_a_command_past_its_timeout_is_interrupted_and_earlier_background_jobs_survive(box):
    box.shell("sleep 300 & echo $! > /tmp/bg.pid")
    out = box.shell("echo before; sleep 60; echo never", timeout=1.0)
    assert out.timed_out and "interrupted" in out.note and out.text.startswith("before") and "never" not in out.text, out
    assert box.shell("kill -0 $(cat /tmp/bg.pid) && echo alive").text == "alive\n"
    assert box.shell("pgrep -x sleep | wc -l").text.strip() == "1"


def test_a_stuck_builtin_loop_that_ignores_sigint_gets_a_new_shell(box):
    out = box.shell("trap '' INT; while :; do :; done", timeout=1.0)
    assert out.timed_out and "new one started" in out.note
    assert box.shell("echo back").text == "back\n"


def test_output_is_capped_but_counted(sandbox_backend):
    with open_sandbox(sandbox_backend, Limits(command_timeout=3.0, output_bytes=1000)) as b:
        out = b.shell("head -c 5000000 /dev/zero | tr '\\0' x")
        assert len(out.text) == 1000 and out.bytes == 5000000 and out.exit_code == 0
        endless = b.shell("yes")
        assert endless.timed_out and len(endless.text) == 1000 and endless.bytes > 1000
        assert b.shell("echo fine").text == "fine\n"


def test_per_process_memory_and_cpu_limits(sandbox_backend):
    with open_sandbox(sandbox_backend, Limits(command_timeout=10.0, memory_mb=256, cpu_seconds=1)) as b:
        out = b.shell("python3 -c 'x = bytearray(600 * 1024 * 1024)' 2>&1 | tail -1")
        assert "MemoryError" in out.text
        out = b.shell("python3 -c 'while True: pass'; echo status=$?")
        assert "status=137" in out.text or "status=152" in out.text  # SIGKILL or SIGXCPU at the CPU limit


# ---------------------------------------------------------------------------------------------- hostile commands
def test_fork_bomb_is_contained_and_dies_with_the_sandbox(sandbox_backend):
    with open_sandbox(sandbox_backend, Limits(command_timeout=3.0, processes=64)) as b:
        ns = userns_of(b)
        b.shell(":(){ :|:& };:", timeout=2.0)
        assert len(processes_in(ns)) <= 64 + 4  # the cap, plus bwrap's init and the supervisor
    assert processes_in(ns) == []


def test_rm_rf_root_leaves_the_host_untouched(sandbox_backend, tmp_path):
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("still here")
    before = {p: sha256(p) for p in (Path("/etc/passwd"), Path("/usr/bin/env"), REPO / "setup.cfg")}
    for cmd in ("rm -rf / 2>&1 | tail -1", "rm -rf --no-preserve-root / 2>&1 | tail -1"):
        with open_sandbox(sandbox_backend, FAST) as b:
            assert "No such file" in b.shell(f"ls {sentinel}").text
            b.shell(cmd, timeout=20.0)
    assert sentinel.read_text() == "still here"
    assert {p: sha256(p) for p in before} == before


def test_filling_the_disk_hits_the_sandbox_caps_not_the_host(sandbox_backend):
    with open_sandbox(sandbox_backend, Limits(command_timeout=20.0, disk_mb=32, file_mb=16)) as b:
        big = b.shell("head -c 100M /dev/zero > /root/big; echo status=$?; ls -l /root/big | awk '{print $5}'")
        assert "File size limit exceeded" in big.text or "status=153" in big.text
        many = b.shell("for i in 1 2 3 4; do head -c 15M /dev/zero > /tmp/f$i || break; done 2>&1; "
                       "for i in 1 2 3 4; do head -c 15M /dev/zero > /usr/f$i || break; done 2>&1")
        assert many.text.count("No space left on device") == 2
        assert b.shell("echo still answering").text == "still answering\n"


def test_no_network_not_even_to_the_hosts_loopback(box):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    threading.Thread(target=lambda: server.accept(), daemon=True).start()
    try:
        probe = ("import socket\nfor addr in (('127.0.0.1', %d), ('1.1.1.1', 80)):\n"
                 "    try:\n        socket.create_connection(addr, timeout=2); print('connected', addr)\n"
                 "    except OSError as e:\n        print('refused', addr[0], type(e).__name__)\n") % port
        out = box.exec(["python3", "-c", probe])
        assert "connected" not in out.text and out.text.count("refused") == 2, out.text
        assert "lo" in box.shell("ls /sys/class/net 2>/dev/null || cat /proc/net/dev").text
    finally:
        server.close()


def test_host_files_and_secrets_are_not_visible(box):
    shadow = box.shell("cat /etc/shadow").text
    assert shadow.startswith("root:*:") and all(line.split(":")[1] == "*" for line in shadow.splitlines())
    out = box.shell(f"ls {REPO} {REPO.parent} /etc/ssh /etc/ssl/private /root/.pyenv 2>&1")
    assert out.text.count("No such file or directory") == 5
    assert int(box.shell("ps -e --no-headers | wc -l").text) < 10  # its own few processes, none of the host's


def test_the_supervisor_protocol_cannot_be_spoofed_from_inside(box):
    fake = '{"output": "FAKE", "bytes": 4, "exit_code": 0, "timed_out": false, "note": null}'
    out = box.shell("for p in $(ls /proc | grep '^[0-9]'); do for fd in 0 1; do "
                    f"echo '{fake}' > /proc/$p/fd/$fd 2>/dev/null && echo wrote $p $fd; done; done; echo tried")
    assert out.text.endswith("tried\n") and "wrote 1 " not in out.text and "wrote 2 " not in out.text
    assert box.shell("echo real").text == "real\n"
    assert all(len(line) < 200 for line in box.shell("ps -eo args").text.splitlines())  # no scripts in argv


def test_host_environment_variables_do_not_reach_the_sandbox(sandbox_backend, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-do-not-leak-123")
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_leak_456")
    with open_sandbox(sandbox_backend, FAST) as b:
        out = b.shell("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/1/cmdline")
        assert "do-not-leak" not in out.text and "do_not_leak" not in out.text
        assert "do-not-leak" not in b.exec(["env"]).text


def test_background_processes_do_not_outlive_the_episode(sandbox_backend):
    with open_sandbox(sandbox_backend, FAST) as b:
        ns = userns_of(b)
        b.shell("nohup sleep 1234 >/dev/null 2>&1 & (sleep 1235 &) ; setsid sleep 1236 & disown; "
                "python3 -c \"import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
                "        os.execvp('sleep', ['sleep', '1237'])\"")
        b.exec(["bash", "-c", "sleep 1238 &"])
        assert b.shell("pgrep -c -f 'sleep 123'").text.strip() == "5"
        assert len(processes_in(ns)) >= 5
    assert processes_in(ns) == []
    leftovers = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline(p).startswith("sleep 123")]
    assert leftovers == []


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------- backends
def test_no_backend_means_a_clear_refusal_never_the_bare_host(monkeypatch):
    real_which = sandbox.shutil.which
    monkeypatch.setattr(sandbox.shutil, "which", lambda name, **kw: None if name in ("bwrap", "docker")
                        else real_which(name, **kw))
    for cached in (sandbox._bubblewrap_works, sandbox._docker_reachable):
        cached.cache_clear()
    try:
        with pytest.raises(SandboxUnavailable, match="never run on the host unsandboxed") as info:
            open_sandbox("auto")
        assert "bubblewrap is not installed" in str(info.value) and "docker CLI is not installed" in str(info.value)
    finally:
        for cached in (sandbox._bubblewrap_works, sandbox._docker_reachable):
            cached.cache_clear()


def test_docker_backend_needs_a_reachable_engine():
    sandbox._docker_reachable.cache_clear()
    why = sandbox._docker_reachable()
    if why is None:
        pytest.skip("a Docker engine is reachable here")
    with pytest.raises(SandboxUnavailable, match="docker: "):
        resolve_backend("docker")
