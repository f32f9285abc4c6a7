"""The supervisor that runs inside every sandbox (bubblewrap or Docker) and answers the host over stdin/stdout.

The host (``agentinstruct.builders.os.sandbox``) starts it as the sandbox's main program
with ``python3 -I -S -c SOURCE LIMITS_JSON`` and sends one JSON request per
line; each gets one JSON line back:

- ``{"op": "shell", "cmd": ..., "timeout": s, "cap": bytes}`` runs ``cmd`` in
  the episode's persistent interactive ``bash --login`` (cwd, variables and
  background jobs carry over between commands, as at a terminal);
- ``{"op": "exec", "argv": [...], "timeout": s, "cap": bytes}`` runs one
  independent process (init scripts, checkers), as ``docker exec`` would.

Answers: ``{"output", "bytes", "exit_code", "timed_out", "note"}``. Output
is stdout and stderr together, of which at most ``cap`` bytes are kept (the
rest is read and dropped, so ``yes`` cannot flood memory); ``bytes`` is how
much there was. A shell command that outlives its timeout is interrupted:
SIGINT to the processes it started, then SIGKILL, and if the shell itself is
stuck (a builtin loop that ignores SIGINT) a fresh login shell replaces it.

The agent's commands reach bash as ``eval $'...'`` with every unusual byte
escaped, on one line ended by a random marker, so any command text, even an
unbalanced quote, comes back as an answer instead of a hung shell.

Stdlib only and Python 3.6 syntax: the interpreter is the sandbox's own.
"""

import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import time
import uuid

LIMITS = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
# The whole environment of every process started here: fixed, like a container image's, never the host's.
ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/bash",
    "TERM": "xterm",
    "LANG": "C.UTF-8",
}
_SAFE = set(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 _./,:=+-")
READ = 65536
NOISE = re.compile(r"^bash: \[\d+: \d+ \(\d+\)\] tcsetattr: Inappropriate ioctl for device\n", re.MULTILINE)


def _limit_child():
    """In each child before exec: its own process group, the episode's resource limits, and first in line for the
    OOM killer: at the episode's memory cap the kernel kills the biggest of the episode's commands, never the
    supervisor that answers the host (a child may lower its score again, but not below the supervisor's)."""
    os.setsid()
    for name, value in LIMITS.items():
        resource.setrlimit(getattr(resource, "RLIMIT_" + name.upper()), (value, value))
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:  # a container whose /proc refuses it: the command must still run
        pass


def _bash_literal(text):
    """``text`` as a bash ``$'...'`` word; only a few plain bytes stay as they are, the rest become ``\\xHH``."""
    raw = text.encode("utf-8", "surrogateescape")
    return "$'" + "".join(chr(b) if b in _SAFE else "\\x%02x" % b for b in raw) + "'"


def _descendants(pid):
    """Every live process below ``pid`` (via /proc/PID/task/TID/children)."""
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir("/proc/%d/task" % parent)
        except OSError:
            continue
        for tid in tids:
            try:
                with open("/proc/%d/task/%s/children" % (parent, tid)) as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):
                continue
            for kid in kids:
                if kid not in found:
                    found.add(kid)
                    todo.append(kid)
    return found


def _signal(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


class Capture(object):
    """Output kept up to ``cap`` bytes; a sliding window finds a marker (and the rest of its line) in any amount."""

    def __init__(self, cap):
        self.cap = cap
        self.head = bytearray()
        self.window = b""
        self.total = 0
        self.found = None  # (marker, rest of its line)

    def _store(self, data):
        self.total += len(data)
        room = self.cap - len(self.head)
        if room > 0:
            self.head += data[:room]

    def feed(self, chunk, markers=()):
        """Add output; True once one of ``markers`` and the end of its line have arrived."""
        data = self.window + chunk
        for marker in markers:
            at = data.find(marker)
            if at >= 0:
                end = data.find(b"\n", at + len(marker))
                if end < 0:
                    self.window = data  # wait for the rest of the marker line
                    return False
                self._store(data[:at])
                self.found = (marker, data[at + len(marker):end])
                self.window = data[end + 1:]
                return True
        cut = max(0, len(data) - max([len(m) + 32 for m in markers] or [0]))
        self._store(data[:cut])
        self.window = data[cut:]
        return False

    def flush(self):
        """Store what the window still holds (no marker is coming)."""
        self._store(self.window)
        self.window = b""

    def text(self):
        # An interactive bash with no terminal complains when a job dies of a signal: that line is ours, not the
        # command's.
        return NOISE.sub("", self.head.decode("utf-8", "replace"))


class Shell(object):
    """The episode's persistent interactive login shell."""

    def __init__(self):
        self.proc = None
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            ["bash", "--login", "--noediting", "-i"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, cwd="/", env=ENV, preexec_fn=_limit_child, bufsize=0,
        )
        # An interactive bash without a terminal warns about job control and prints prompts: silence it, sync.
        self._write("PS1=''; PS2=''; PROMPT_COMMAND=''; unset HISTFILE; cd /")
        self._until([self._mark_line()], 30.0, Capture(4096))

    def _write(self, line):
        self.proc.stdin.write(line.encode("utf-8") + b"\n")

    def _mark_line(self):
        token = uuid.uuid4().hex
        self._write("printf '\\n%%s:%%s\\n' __AI_END_%s \"$?\"" % token)
        return ("\n__AI_END_%s:" % token).encode()

    def _until(self, markers, seconds, capture):
        """Read into ``capture`` until one of ``markers``: 'done', 'timeout' or 'exited'."""
        if capture.feed(b"", markers):  # what was read past an earlier marker may hold this one
            return "done"
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return "timeout"
            chunk = os.read(fd, READ)
            if not chunk:
                return "exited"
            if capture.feed(chunk, markers):
                return "done"

    def _restart(self):
        _signal([self.proc.pid] + sorted(_descendants(self.proc.pid)), signal.SIGKILL)
        self.proc.wait()
        self.start()

    def run(self, cmd, timeout, cap):
        before = _descendants(self.proc.pid)
        try:
            self._write("eval %s </dev/null 2>&1" % _bash_literal(cmd))
            marker = self._mark_line()
        except OSError:  # the shell is gone (it ran `exit` after the last command)
            self._restart()
            return self.run(cmd, timeout, cap)
        capture = Capture(cap)
        state = self._until([marker], timeout, capture)
        note = None
        if state == "exited":
            self.proc.wait()
            self.start()
            note = "the shell exited; a new login shell was started"
        elif state == "timeout":
            note = self._interrupt(before, capture, marker, timeout)
        capture.flush()
        code = None
        if capture.found is not None and capture.found[0] == marker:
            try:
                code = int(capture.found[1])
            except ValueError:
                code = None
        out = capture.text()
        return {"output": out, "bytes": capture.total, "exit_code": code, "timed_out": state == "timeout",
                "note": note}

    def _interrupt(self, before, capture, marker, timeout):
        """Stop what the timed-out command started; keep the shell (and earlier background jobs) when possible."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            if sig == signal.SIGINT:
                # An interactive bash drops the running line when it gets SIGINT while its command dies of one; the
                # shell first, as the command's end may otherwise reach it before its own SIGINT, and it runs the
                # next command of the line (4 in 12 interrupted lines here).
                _signal([self.proc.pid], signal.SIGINT)
            _signal(sorted(_descendants(self.proc.pid) - before), sig)
            resync = self._mark_line()
            state = self._until([marker, resync], 2.0, capture)
            if state == "done" and capture.found[0] == marker:  # it finished just now: wait for the resync too
                found = capture.found
                state = self._until([resync], 2.0, capture)
                capture.found = found
            if state == "done":
                return "the command did not finish within %g seconds and was interrupted" % timeout
            if state == "exited":
                break
        self._restart()
        return "the command did not finish within %g seconds; its shell was killed and a new one started" % timeout


def run_exec(argv, timeout, cap):
    """One independent process, output capped; background processes it leaves behind keep running."""
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd="/", env=ENV, preexec_fn=_limit_child, bufsize=0)
    except OSError as exc:
        return {"output": str(exc), "bytes": len(str(exc)), "exit_code": 127, "timed_out": False, "note": None}
    capture = Capture(cap)
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    timed_out = False
    while True:
        # Short waits: once the process has exited, leftovers that still hold the pipe open must not keep us
        # waiting for output that may never come.
        wait = min(0.05, deadline - time.monotonic())
        if wait <= 0:
            timed_out = True
            _signal(sorted(_descendants(proc.pid)) + [proc.pid], signal.SIGKILL)
            break
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            if proc.poll() is not None:
                break
            continue
        chunk = os.read(fd, READ)
        if not chunk:
            break
        capture.feed(chunk)
    proc.stdout.close()
    code = proc.wait()
    return {"output": capture.text(), "bytes": capture.total, "exit_code": None if timed_out else code,
            "timed_out": timed_out, "note": None}


def main():
    shell = Shell()
    out = sys.stdout.buffer
    # The PID namespace lets the host wait, on close, until every process of the sandbox is gone.
    greeting = {"ready": True, "pidns": os.readlink("/proc/self/ns/pid")}
    out.write(json.dumps(greeting).encode("utf-8") + b"\n")
    out.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line.decode("utf-8"))
        if request["op"] == "shell":
            answer = shell.run(request["cmd"], request["timeout"], request["cap"])
        elif request["op"] == "exec":
            answer = run_exec(request["argv"], request["timeout"], request["cap"])
        else:
            answer = {"error": "unknown op %r" % request["op"]}
        out.write(json.dumps(answer).encode("utf-8") + b"\n")
        out.flush()


if __name__ == "__main__":
    # SIGPIPE stays ignored (Python's default) so that writing to a shell that has just exited raises EPIPE, which
    # Shell.run answers with a new shell; under SIG_DFL it killed the supervisor (1 in 15 `exit` commands here).
    main()
