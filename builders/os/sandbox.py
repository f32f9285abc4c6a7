"""Sandboxed Linux shells for the os split: one throwaway machine-like root per episode.

``open_sandbox()`` starts a sandbox and returns a ``Sandbox`` whose ``shell``
runs commands in a persistent interactive ``bash --login`` (the agent's
terminal) and whose ``exec`` runs independent processes (init scripts,
checkers), both answering an ``Output``. Inside, a small supervisor
(``agentinstruct.builders.os.supervisor``) does the work; the host only talks
JSON lines with it. Sandboxes started ahead of need, off an episode's
critical path, come from ``agentinstruct.builders.os.pool``.

Backends:

- ``bubblewrap`` (the default): ``bwrap`` with new PID, network, IPC, UTS and
  mount namespaces, inside a user namespace where root is root. No network
  (only a loopback device), no host environment (``--clearenv``), no host
  files but read-only copies: ``/usr`` (and ``/bin``, ``/lib*`` where they
  are directories) are overlays whose writes land in the sandbox's tmpfs;
  ``/etc`` is a fresh copy of a fixed list of harmless host files
  (``ETC_ENTRIES``: no ``shadow``, keys, credentials or login configuration;
  ``shadow``/``gshadow`` are generated) plus the sandbox's own login files
  (``ETC_FILES``); ``/``, ``/root``, ``/home``, ``/tmp``, ``/var`` ... live
  on the same tmpfs. When the host runs it as root, the sandbox's uids
  0-65535 map to host uids 100000-165535, so root inside is an unprivileged
  user outside and ``useradd``/``chown`` work; otherwise only root is mapped
  (``chown`` to other users fails). Capabilities are cut to Docker's default
  set after the mounts are made. Files from the host (``/usr``) show as owned
  by ``nobody`` inside and cannot be changed, only added next to.
- ``docker``: a container per episode (``--network none``, memory and pids
  limits) of an image with bash and python3, used when a Docker engine is
  reachable (``docker info`` succeeds); AgentBench's image is what its users
  have (``builders/os/data/Dockerfile`` builds an equivalent).

``auto`` takes bubblewrap when it works, else Docker when an engine answers,
else refuses with ``SandboxUnavailable``: there is never a fallback to an
unsandboxed host shell.

Environment (bubblewrap), fixed like a container image's and the same on every
host: processes start with exactly ``PATH=/usr/local/sbin:/usr/local/bin:
/usr/sbin:/usr/bin:/sbin:/bin``, ``HOME=/root``, ``USER=root``,
``LOGNAME=root``, ``SHELL=/bin/bash``, ``TERM=xterm`` and ``LANG=C.UTF-8``
(``supervisor.ENV``); the agent's login shell reads the sandbox's own
``/etc/profile`` (PATH, ``umask 022``, ``/etc/bash.bashrc``, then
``/etc/profile.d/*.sh``, empty at the start), ``/root/.profile`` and
``/root/.bashrc`` (from its ``/etc/skel``), which export nothing more, so
``env`` there shows those seven plus bash's ``PWD``, ``OLDPWD``, ``SHLVL`` and
``_``. ``/etc/environment`` is empty, ``/etc/default/locale`` says
``LANG=C.UTF-8`` and ``/etc/login.defs`` is Debian's (both read by ``su``).
Nothing of the host's ``/etc/profile``, ``/etc/profile.d``,
``/etc/bash.bashrc``, ``/etc/environment``, ``/etc/skel``, ``/etc/security``,
``/etc/login.defs`` or ``/etc/inputrc`` gets in.

Limits (``Limits``, in ``agentinstruct.builders.os.limits``) hold on every
backend. With bubblewrap, one cgroup per episode caps its memory and
processes where the host lets us make one
(``agentinstruct.builders.os.cgroups``); on either backend, every start is
first admitted against the host's memory
(``agentinstruct.builders.os.admission``). Closing a
sandbox kills every process in it (the PID namespace dies with its init,
which dies with ``bwrap``, ``--die-with-parent``; what is left in its cgroup
is killed) and removes its cgroup; Docker removes its container.
"""

from __future__ import annotations

import functools
import json
import marshal
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from agentinstruct.builders.os import admission, cgroups
from agentinstruct.builders.os.admission import Admission, Reservation
from agentinstruct.builders.os.errors import SandboxError, SandboxUnavailable
from agentinstruct.builders.os.limits import Limits

BACKENDS: tuple[str, ...] = ("auto", "bubblewrap", "docker")
DEFAULT_DOCKER_IMAGE = "agentinstruct/os:latest"
"""Built from ``builders/os/data/Dockerfile`` (AgentBench's default image: Ubuntu, python3, git, vim, curl ...)."""
HOSTNAME = "sandbox"
UID_BASE = 100000
"""Host uid of root inside a bubblewrap sandbox started by host root (a range of 65536 uids from here)."""

# Host /etc entries copied into the sandbox: what python3, useradd, su and the C library need; nothing secret and no
# login configuration (profile, bashrc, environment, skel, security, login.defs: ETC_FILES has the sandbox's own).
ETC_ENTRIES: tuple[str, ...] = (
    "adduser.conf", "alternatives", "debian_version", "deluser.conf", "gai.conf", "group", "host.conf", "issue",
    "issue.net", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "locale.gen", "localtime",
    "lsb-release", "magic", "magic.mime", "manpath.config", "mime.types", "networks", "nsswitch.conf", "os-release",
    "pam.conf", "pam.d", "passwd", "protocols", "python3", "rpc", "services", "shells", "terminfo", "timezone", "vim",
    "xattr.conf",
)
HOST_ETC = Path("/etc")
"""Where ``ETC_ENTRIES`` are read from."""
ETC_FILES: dict[str, str] = {
    "profile": """\
# /etc/profile of the agentinstruct sandbox (the same on every host): read by login shells.
if [ "$(id -u)" -eq 0 ]; then
  PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
else
  PATH="/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"
fi
export PATH
umask 022
if [ "${PS1-}" ] && [ "${BASH-}" ] && [ "$BASH" != "/bin/sh" ] && [ -f /etc/bash.bashrc ]; then
  . /etc/bash.bashrc
fi
for i in /etc/profile.d/*.sh; do
  if [ -r "$i" ]; then . "$i"; fi
done
unset i
""",
    "bash.bashrc": """\
# /etc/bash.bashrc of the agentinstruct sandbox: read by interactive bash.
[ -z "${PS1-}" ] && return
shopt -s checkwinsize
PS1='\\u@\\h:\\w\\$ '
""",
    "environment": "",
    "default/locale": "LANG=C.UTF-8\n",
    "default/useradd": "SHELL=/bin/sh\n",
    "login.defs": """\
# /etc/login.defs of the agentinstruct sandbox (Debian's settings).
MAIL_DIR        /var/mail
ENV_SUPATH      PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
ENV_PATH        PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games
HUSHLOGIN_FILE  .hushlogin
TTYGROUP        tty
TTYPERM         0600
UMASK           022
PASS_MAX_DAYS   99999
PASS_MIN_DAYS   0
PASS_WARN_AGE   7
UID_MIN         1000
UID_MAX         60000
GID_MIN         1000
GID_MAX         60000
LOGIN_RETRIES   5
LOGIN_TIMEOUT   60
DEFAULT_HOME    yes
USERGROUPS_ENAB yes
ENCRYPT_METHOD  SHA512
NONEXISTENT     /nonexistent
""",
    "security/pam_env.conf": "# No variables here: the sandbox's environment is fixed.\n",
    "security/limits.conf": "# No limits here: the sandbox sets its own.\n",
    "skel/.profile": """\
# ~/.profile of the agentinstruct sandbox: read by login shells.
if [ -n "${BASH_VERSION-}" ] && [ -f "$HOME/.bashrc" ]; then . "$HOME/.bashrc"; fi
if [ -d "$HOME/bin" ]; then PATH="$HOME/bin:$PATH"; fi
if [ -d "$HOME/.local/bin" ]; then PATH="$HOME/.local/bin:$PATH"; fi
""",
    "skel/.bashrc": """\
# ~/.bashrc of the agentinstruct sandbox: read by interactive bash.
case $- in *i*) ;; *) return ;; esac
HISTCONTROL=ignoreboth
shopt -s histappend checkwinsize
""",
}
"""The sandbox's own login files, written into its ``/etc`` (``skel`` is also copied to ``/root``)."""
ETC_DIRS: tuple[str, ...] = ("profile.d", "security/limits.d")
"""Empty directories of the sandbox's ``/etc`` (its programs look there; the agent may add files)."""
# Capabilities root keeps inside (Docker's default set): enough for chown, su, kill; no mount, no ptrace.
KEEP_CAPS = ("chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
             "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap")
TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
MARSHAL_VERSION = 2
"""The ``marshal`` format of ``newroot.py``'s settings: version 2 (strings, lists, dicts) reads on every Python 3."""


@dataclass(frozen=True)
class Output:
    """What a command left: its output (stdout and stderr together, capped), exit status and what happened."""

    text: str
    bytes: int
    """Bytes of output the command produced (``text`` holds at most ``Limits.output_bytes``)."""
    exit_code: int | None
    """None when the command was killed for its timeout or its shell was replaced."""
    timed_out: bool = False
    note: str | None = None
    """Said to the agent: the command was interrupted, the shell exited and was restarted, ..."""


@functools.lru_cache(maxsize=None)
def _source(name: str) -> bytes:
    """A program of this package that runs inside sandboxes (``supervisor.py``, ``newroot.py``)."""
    return resources.files(__package__).joinpath(name).read_bytes()


def _etc_dirs() -> list[str]:
    """Directories the sandbox's ``/etc`` gets besides the host's files: ``ETC_DIRS`` and ``ETC_FILES``' parents."""
    return sorted({str(Path(name).parent) for name in ETC_FILES} - {"."} | set(ETC_DIRS))


class Sandbox:
    """A running sandbox: ``shell`` and ``exec`` until ``close`` (also a context manager).

    Example (needs bubblewrap, or Docker):
        >>> with open_sandbox() as box:  # doctest: +SKIP
        ...     box.shell("cd /tmp && echo hi > f && pwd").text
        '/tmp\\n'
    """

    def __init__(self, proc: subprocess.Popen, backend: str, limits: Limits, stderr: Any, on_close: list[list[str]],
                 cgroup: cgroups.Cgroup | None = None, reservation: Reservation | None = None):
        self.backend = backend
        self.limits = limits
        self._proc = proc
        self._stderr = stderr
        self._on_close = on_close
        self._cgroup = cgroup
        self._reservation = reservation
        self._buffer = b""
        self._closed = False
        self._pidns: str | None = None
        try:
            first = self._read_line(limits.start_timeout)
        except SandboxError as exc:
            self.close()
            raise SandboxUnavailable(f"the {backend} sandbox did not start: {exc}") from None
        greeting = json.loads(first)
        if greeting.get("ready") is not True:
            self.close()
            raise SandboxUnavailable(f"the {backend} sandbox did not start: unexpected greeting {first[:200]!r}")
        self._pidns = greeting.get("pidns") if backend == "bubblewrap" else None

    def _failure(self) -> str:
        self._stderr.seek(0)
        text = self._stderr.read().decode("utf-8", "replace").strip()
        code = self._proc.poll()
        return (text[-2000:] or "no message") + ("" if code is None else f" (exit status {code})")

    def _read_line(self, seconds: float) -> str:
        fd = self._proc.stdout.fileno()
        deadline = time.monotonic() + seconds
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise SandboxError(f"no answer within {seconds:g} s")
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                raise SandboxError(f"the sandbox ended: {self._failure()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode("utf-8")

    def _request(self, request: dict[str, Any], seconds: float) -> Output:
        if self._closed:
            raise SandboxError("the sandbox is closed")
        try:
            self._proc.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
            self._proc.stdin.flush()
            # The supervisor enforces the timeout; the extra time covers its interrupt and restart steps.
            answer = json.loads(self._read_line(seconds + 20.0))
            return Output(answer["output"], answer["bytes"], answer["exit_code"], answer["timed_out"], answer["note"])
        except (OSError, ValueError, KeyError, SandboxError) as exc:
            self.close()
            raise SandboxError(f"{self.backend} sandbox failed: {exc}") from None

    def shell(self, command: str, timeout: float | None = None) -> Output:
        """Run ``command`` (any bash text, many lines allowed) in the episode's persistent login shell."""
        seconds = self.limits.command_timeout if timeout is None else timeout
        return self._request({"op": "shell", "cmd": command, "timeout": seconds, "cap": self.limits.output_bytes},
                             seconds)

    def exec(self, argv: list[str], timeout: float | None = None) -> Output:
        """Run ``argv`` as its own process (cwd ``/``, root, clean environment), apart from the shell."""
        seconds = self.limits.exec_timeout if timeout is None else timeout
        return self._request({"op": "exec", "argv": list(argv), "timeout": seconds,
                              "cap": self.limits.output_bytes}, seconds)

    def close(self) -> None:
        """Kill everything in the sandbox and release it. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._proc.poll() is None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._proc.wait()
        try:
            if self._cgroup is not None:
                self._cgroup.remove()  # kills what is left there: the cgroup sees every process, whatever it did
            if self._pidns is not None:  # a task leaves its cgroup a moment before it has quite exited
                _wait_until_gone(self._pidns)
            for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
                try:
                    stream.close()
                except OSError:
                    pass
            for argv in self._on_close:
                subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False,
                               env=_docker_env())
        finally:
            if self._reservation is not None:
                self._reservation.release()

    def running(self) -> bool:
        """Whether the sandbox is up (not closed, its processes not ended).

        Example (needs bubblewrap):
            >>> box = open_sandbox("bubblewrap")  # doctest: +SKIP
            >>> box.running(), box.close(), box.running()  # doctest: +SKIP
            (True, None, False)
        """
        return not self._closed and self._proc.poll() is None

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _in_namespace(pidns: str) -> list[int]:
    """Live (not zombie) processes in PID namespace ``pidns``. Zombies are dead already: the sandbox's init
    lingers as one until the host's init reaps it, which may take seconds."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == pidns:
                    stat = Path(f"/proc/{entry}/stat").read_text()
                    if stat[stat.rindex(")") + 2] != "Z":
                        found.append(int(entry))
            except (OSError, ValueError):
                continue
    return found


def _wait_until_gone(pidns: str, seconds: float = 10.0) -> None:
    """The kernel kills a PID namespace's processes when its init dies, but they take a moment to exit."""
    deadline = time.monotonic() + seconds
    while _in_namespace(pidns):
        if time.monotonic() > deadline:
            raise SandboxError(f"processes of the sandbox (PID namespace {pidns}) are still alive after {seconds:g} s")
        time.sleep(0.01)


def _data_fd(data: bytes) -> int:
    """An open descriptor of an unlinked temporary file holding ``data``, positioned at its start."""
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.seek(0)
        return os.dup(f.fileno())


def _popen(argv: list[str], env: dict[str, str], **kwargs: Any) -> tuple[subprocess.Popen, Any]:
    stderr = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr,
                            start_new_session=True, env=env, **kwargs)
    return proc, stderr


def _docker_env() -> dict[str, str]:
    """What the docker CLI needs to reach the engine the user configured; containers never see it."""
    keep = {k: v for k, v in os.environ.items() if k.startswith("DOCKER_") or k in ("HOME", "XDG_RUNTIME_DIR")}
    return {"PATH": os.environ.get("PATH", os.defpath), **keep}


@functools.lru_cache(maxsize=None)
def _closed_dirs() -> tuple[str, ...]:
    """Directories under the host's /usr (and /bin, /lib* when not symlinks) that others may not enter: root in
    the sandbox is such an other. Walked once per process (about half a second)."""
    found, todo = [], ["/usr"] + [f"/{d}" for d in TOP_DIRS if Path("/", d).is_dir() and not Path("/", d).is_symlink()]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mode & 0o005 != 0o005:
                    found.append(entry.path)
                else:
                    todo.append(entry.path)
            except OSError:
                continue
    return tuple(sorted(found))


def _mapped_userns() -> int:
    """As host root: a new user namespace mapping uids/gids 0-65535 to UID_BASE..., held open by the fd returned."""
    holder = subprocess.Popen(["unshare", "--user", "--", "sleep", "60"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        own = os.readlink("/proc/self/ns/user")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/user") == own:
            if holder.poll() is not None or time.monotonic() > deadline:
                raise SandboxUnavailable(f"unshare --user failed: {holder.stderr.read().decode().strip()}")
            time.sleep(0.0005)
        for name in ("uid_map", "gid_map"):
            Path(f"/proc/{holder.pid}/{name}").write_text(f"0 {UID_BASE} 65536\n")
        return os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
    except OSError as exc:
        raise SandboxUnavailable(f"could not set up the sandbox's user namespace: {exc}") from None
    finally:
        holder.kill()
        holder.wait()
        holder.stderr.close()



# Joins the cgroup.procs files named in its arguments, then execs the rest: the sandbox's first process is in the
# episode's cgroup before it starts any other, so no process of the sandbox is ever outside it.
_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n - 1)); done; exec "$@"'


def _bubblewrap(limits: Limits, reservation: Reservation | None = None) -> Sandbox:
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; "
                                 "`make setup` does it)")
    if not Path("/usr/bin/python3").exists() and shutil.which("python3", path="/usr/bin:/bin") is None:
        raise SandboxUnavailable("the bubblewrap sandbox runs the host's /usr/bin/python3, which is missing")
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin",
            "--hostname", HOSTNAME, "--ro-bind", "/usr", "/usr"]
    for name in TOP_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--dir", "/.sandbox/fs", "--tmpfs", "/.sandbox/host-etc",
             # What runs before the pivot (python3, setpriv) may resolve through the host's /etc/alternatives.
             "--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
    for name in ETC_ENTRIES:
        args += ["--ro-bind-try", str(HOST_ETC / name), f"/.sandbox/host-etc/{name}"]
    # The new root is built inside by builders/os/newroot.py, from these settings (its docstring says how).
    settings = {"limits": json.dumps(limits.rlimits()), "host": HOSTNAME, "caps": ",".join(f"+{c}" for c in KEEP_CAPS),
                "masks": list(_closed_dirs()), "disk": f"{limits.disk_mb}m", "inodes": str(limits.inodes()),
                "etc_dirs": _etc_dirs(), "etc_files": ETC_FILES, "top_dirs": list(TOP_DIRS)}
    fds = [_data_fd(_source("newroot.py")), _data_fd(marshal.dumps(settings, MARSHAL_VERSION)),
           _data_fd(_source("supervisor.py"))]
    args += ["--file", str(fds[0]), "/.sandbox/newroot.py", "--file", str(fds[1]), "/.sandbox/newroot.settings",
             "--file", str(fds[2]), "/.sandbox/supervisor.py", "--cap-add", "ALL"]
    argfile = _data_fd(b"".join(a.encode() + b"\0" for a in args))
    fds.append(argfile)
    parents = cgroups.episode_parents()[0]
    cgroup = None
    try:
        if os.geteuid() == 0:
            fds.append(_mapped_userns())
            argv = ["nsenter", f"--user=/proc/self/fd/{fds[-1]}", "--setuid", "0", "--setgid", "0", "--", "bwrap"]
        else:
            argv = ["bwrap", "--unshare-user", "--uid", "0", "--gid", "0"]
        argv += ["--args", str(argfile), "--", "python3", "-I", "-S", "/.sandbox/newroot.py",
                 "/.sandbox/newroot.settings"]
        if parents is not None:
            cgroup = cgroups.Cgroup.create(parents, limits)
            argv = ["/bin/sh", "-c", _JOIN, "sh", str(len(cgroup.procs())), *cgroup.procs(), *argv]
            if reservation is not None:
                reservation.measure = cgroup.pinned_mb
        proc, stderr = _popen(argv, {"PATH": os.defpath}, pass_fds=fds)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    return Sandbox(proc, "bubblewrap", limits, stderr, [], cgroup, reservation)


def _docker(limits: Limits, image: str, reservation: Reservation | None = None) -> Sandbox:
    name = f"agentinstruct-os-{uuid.uuid4().hex[:12]}"
    run = ["docker", "run", "-d", "--rm", "--name", name, "--network", "none", "--hostname", HOSTNAME,
           "--pids-limit", str(limits.processes), "--memory", f"{limits.memory_total_mb}m",
           "--memory-swap", f"{limits.memory_total_mb}m", "--security-opt", "no-new-privileges",
           "--label", "agentinstruct.builders.os.sandbox=os", image, "sleep", "infinity"]
    started = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False, env=_docker_env())
    if started.returncode != 0:
        raise SandboxUnavailable(f"docker could not start {image!r}: {started.stderr.strip()[-1000:]} "
                                 f"(build the image with: docker build -t {DEFAULT_DOCKER_IMAGE} builders/os/data)")
    proc, stderr = _popen(["docker", "exec", "-i", name, "python3", "-I", "-S", "-c", _source("supervisor.py").decode(),
                           json.dumps(limits.rlimits())], _docker_env())
    return Sandbox(proc, "docker", limits, stderr, [["docker", "rm", "-f", name]], reservation=reservation)


@functools.lru_cache(maxsize=None)
def _docker_reachable() -> str | None:
    """None when a Docker engine answers, else why not (cached for the process)."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=20, check=False, env=_docker_env())
    except subprocess.TimeoutExpired:
        return "docker info did not answer within 20 s"
    return None if info.returncode == 0 else f"no Docker engine: {info.stderr.strip()[-300:] or 'docker info failed'}"


@functools.lru_cache(maxsize=None)
def _bubblewrap_works() -> str | None:
    """None when a bubblewrap sandbox starts here, else why not (tried once per process)."""
    try:
        _bubblewrap(Limits()).close()
    except SandboxUnavailable as exc:
        return str(exc)
    return None


def resolve_backend(backend: str = "auto") -> str:
    """The backend ``open_sandbox`` will use: ``backend`` itself if it can run, for ``auto`` the first that can.

    Raises ``SandboxUnavailable`` saying why each candidate cannot run: there is no unsandboxed fallback.

    Example (needs bubblewrap; the answer depends on the machine):
        >>> resolve_backend()  # doctest: +SKIP
        'bubblewrap'
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    reasons = []
    for candidate in ("bubblewrap", "docker") if backend == "auto" else (backend,):
        why = _bubblewrap_works() if candidate == "bubblewrap" else _docker_reachable()
        if why is None:
            return candidate
        reasons.append(f"{candidate}: {why}")
    raise SandboxUnavailable("no sandbox can run here, and commands are never run on the host unsandboxed. "
                             + "; ".join(reasons))


def admit_and_start(backend: str, limits: Limits, docker_image: str, admission: Admission,
                    stop: threading.Event | None = None) -> Sandbox | None:
    """Admit, then start, a sandbox on a resolved ``backend``: what ``open_sandbox`` and a pool's starters do.
    None when ``stop`` is set while it waits for memory."""
    if backend == "bubblewrap" and cgroups.episode_parents()[0] is None:
        limits = limits.without_cgroup()
    reservation = admission.reserve(limits.memory_total_mb, stop)
    if reservation is None:
        return None
    try:
        if backend == "bubblewrap":
            return _bubblewrap(limits, reservation)
        return _docker(limits, docker_image, reservation)
    except BaseException:
        reservation.release()
        raise


def open_sandbox(backend: str = "auto", limits: Limits = Limits(), docker_image: str = DEFAULT_DOCKER_IMAGE) -> Sandbox:
    """Start a fresh sandbox on ``backend`` (``auto``, ``bubblewrap`` or ``docker``), once ``ADMISSION`` lets it.

    Example (needs bubblewrap):
        >>> with open_sandbox("bubblewrap", Limits(command_timeout=5)) as box:  # doctest: +SKIP
        ...     box.shell("sleep 60").note
        'the command did not finish within 5 seconds and was interrupted'
    """
    box = admit_and_start(resolve_backend(backend), limits, docker_image, admission.ADMISSION)
    assert box is not None  # only a stop event makes admit_and_start give up
    return box
