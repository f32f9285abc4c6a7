"""Sandboxed Linux shells for the os split: one throwaway machine-like root per episode.

``open_sandbox()`` starts a sandbox and returns a ``Sandbox`` whose ``shell``
runs commands in a persistent interactive ``bash --login`` (the agent's
terminal) and whose ``exec`` runs independent processes (init scripts,
checkers), both answering an ``Output``. Inside, a small supervisor
(``agentinstruct.builders.os.supervisor``) does the work; the host only talks
JSON lines with it.

Backends:

- ``bubblewrap`` (the default): ``bwrap`` with new PID, network, IPC, UTS and
  mount namespaces, inside a user namespace where root is root. No network
  (only a loopback device), no host environment (``--clearenv``), no host
  files but read-only copies: ``/usr`` (and ``/bin``, ``/lib*`` where they
  are directories) are overlays whose writes land in a size-capped tmpfs;
  ``/etc`` is a fresh copy of a fixed list of harmless host files (no
  ``shadow``, keys or credentials; ``shadow``/``gshadow`` are generated);
  ``/``, ``/root``, ``/home``, ``/tmp``, ``/var`` ... live on a size-capped
  tmpfs. When the host runs it as root, the sandbox's uids 0-65535 map to
  host uids 100000-165535, so root inside is an unprivileged user outside and
  ``useradd``/``chown`` work; otherwise only root is mapped (``chown`` to
  other users fails). Capabilities are cut to Docker's default set after the
  mounts are made. Files from the host (``/usr``) show as owned by ``nobody``
  inside and cannot be changed, only added next to.
- ``docker``: a container per episode (``--network none``, memory and pids
  limits) of an image with bash and python3, used when a Docker engine is
  reachable (``docker info`` succeeds); AgentBench's image is what its users
  have (``builders/os/data/Dockerfile`` builds an equivalent).

``auto`` takes bubblewrap when it works, else Docker when an engine answers,
else refuses with ``SandboxUnavailable``: there is never a fallback to an
unsandboxed host shell.

Limits (``Limits``): per-command wall clock (the command is interrupted and
the agent told), per-process CPU time, address space, file size and open
files, a process count for the whole episode, a size cap on every writable
filesystem, and a cap on the output collected per command. Closing a
sandbox kills every process in it: the PID namespace dies with its init,
which dies with ``bwrap`` (``--die-with-parent``); Docker removes its
container.
"""

from __future__ import annotations

import functools
import json
import os
import select
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

BACKENDS: tuple[str, ...] = ("auto", "bubblewrap", "docker")
DEFAULT_DOCKER_IMAGE = "agentinstruct/os:latest"
"""Built from ``builders/os/data/Dockerfile`` (AgentBench's default image: Ubuntu, python3, git, vim, curl ...)."""
HOSTNAME = "sandbox"
UID_BASE = 100000
"""Host uid of root inside a bubblewrap sandbox started by host root (a range of 65536 uids from here)."""

# Host /etc entries copied into the sandbox: what a shell, python3, useradd and su need; nothing secret.
ETC_ENTRIES: tuple[str, ...] = (
    "adduser.conf", "alternatives", "bash.bashrc", "bash_completion.d", "debian_version", "default",
    "deluser.conf", "environment", "gai.conf", "group", "host.conf", "inputrc", "issue", "issue.net",
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "locale.alias", "locale.gen", "localtime", "login.defs",
    "lsb-release", "magic", "magic.mime", "manpath.config", "mime.types", "networks", "nsswitch.conf",
    "os-release", "pam.conf", "pam.d", "passwd", "profile", "profile.d", "protocols", "python3", "rpc",
    "security", "services", "shells", "skel", "terminfo", "timezone", "vim", "xattr.conf",
)
# Capabilities root keeps inside (Docker's default set): enough for chown, su, kill; no mount, no ptrace.
KEEP_CAPS = ("chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
             "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap")
TOP_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")

# Runs inside bwrap with every capability of the sandbox's user namespace: builds the episode's root on a
# size-capped tmpfs, pivots into it (so nothing of bwrap's staging root stays reachable), drops capabilities
# and starts the supervisor.
_SETUP = r"""
set -eu
R=/.sandbox/root U=/.sandbox/upper
exec 3< /.sandbox/supervisor.py  # still readable as /dev/fd/3 once the staging root is gone
cd "$R"
mkdir -p usr etc root home tmp run/lock var/tmp var/log var/lib var/cache var/spool var/mail var/opt var/local \
  var/backups srv opt mnt media proc dev sys boot .old
chmod 700 root; chmod 1777 tmp var/tmp
ln -s /run var/run; ln -s /run/lock var/lock
overlay() {
  mkdir -p "$U/$1" "$U/$1.work"
  mount -t overlay overlay -o "lowerdir=/$1,upperdir=$U/$1,workdir=$U/$1.work,userxattr" "$R/$1"
}
overlay usr
for d in bin sbin lib lib32 lib64 libx32; do
  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$d"; elif [ -d "/$d" ]; then mkdir "$d"; overlay "$d"; fi
done
mkdir -p usr/local "$U/local"
(cd "$U/local" && mkdir bin etc games include lib man sbin share src)
mount --bind "$U/local" usr/local
# Host directories root may not enter here (owned by an unmapped uid) become empty ones root can: at a real root
# prompt `find /` does not trip over them either.
mask() { mount -t tmpfs -o size=4k,mode=700 masked "$1"; }
printf '%s\n' "$masks" | while IFS= read -r d; do if [ -n "$d" ] && [ -d "$R$d" ]; then mask "$R$d"; fi; done
# Host files only root may read there (e.g. security/opasswd) stay behind: they are exactly the ones to leave out.
cp -a --no-preserve=ownership /.sandbox/host-etc/. etc/ 2>/dev/null || true
awk -F: '{print $1":*:19000:0:99999:7:::"}' etc/passwd > etc/shadow
awk -F: '{print $1":*::"}' etc/group > etc/gshadow
chmod 640 etc/shadow etc/gshadow
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$host" > etc/hosts
echo "$host" > etc/hostname
: > etc/resolv.conf
ln -s /proc/self/mounts etc/mtab
if [ -d etc/skel ]; then cp -a etc/skel/. root/; fi
mount --rbind /proc proc
find proc -mindepth 1 -maxdepth 3 \( -path 'proc/[0-9]*' -o -path proc/self -o -path proc/thread-self \) -prune \
  -o -type d ! -readable -print | while IFS= read -r d; do mask "$d"; done
mount --rbind /dev dev
mkdir -p dev/shm
mount -t tmpfs -o "size=$shm,mode=1777" shm dev/shm
pivot_root . .old
cd /
umount -l /.old
rmdir /.old
exec setpriv "--bounding-set=-all,$caps" --inh-caps=-all --ambient-caps=-all -- \
  python3 -I -S /dev/fd/3 "$limits"
"""


class SandboxUnavailable(ValueError):
    """No sandbox backend can start here (a ValueError so the CLI reports it as one clear line)."""


class SandboxError(RuntimeError):
    """A running sandbox stopped answering or broke its protocol; the episode is an environment error."""


@dataclass(frozen=True)
class Limits:
    """What one episode's sandbox may use."""

    command_timeout: float = 20.0
    """Wall-clock seconds for one shell command before it is interrupted."""
    exec_timeout: float = 120.0
    """Wall-clock seconds for one independent process (init script, checker; some AgentBench inits sleep 60 s)."""
    memory_mb: int = 2048
    """Address space per process (RLIMIT_AS)."""
    cpu_seconds: int = 120
    """CPU time per process (RLIMIT_CPU)."""
    processes: int = 256
    """Processes of the episode at once (RLIMIT_NPROC, counted in the sandbox's user namespace)."""
    disk_mb: int = 512
    """Size of each writable filesystem (the root tmpfs; the overlays' upper tmpfs; /dev/shm gets a quarter)."""
    file_mb: int = 256
    """Largest file a process may write (RLIMIT_FSIZE)."""
    open_files: int = 1024
    """Open files per process (RLIMIT_NOFILE)."""
    output_bytes: int = 65536
    """Output kept per command (the rest is read and dropped); the agent sees far less (observation_limit)."""
    start_timeout: float = 30.0
    """Seconds for a sandbox to come up."""

    def rlimits(self) -> dict[str, int]:
        """The per-process resource limits the supervisor sets on every child, by RLIMIT_ name.

        Example:
            >>> Limits(processes=64).rlimits()["nproc"]
            64
        """
        mb = 1024 * 1024
        return {"as": self.memory_mb * mb, "cpu": self.cpu_seconds, "nproc": self.processes,
                "fsize": self.file_mb * mb, "nofile": self.open_files, "core": 0}


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


def _supervisor_source() -> str:
    return resources.files(__package__).joinpath("supervisor.py").read_text(encoding="utf-8")


class Sandbox:
    """A running sandbox: ``shell`` and ``exec`` until ``close`` (also a context manager).

    Example (needs bubblewrap, or Docker):
        >>> with open_sandbox() as box:  # doctest: +SKIP
        ...     box.shell("cd /tmp && echo hi > f && pwd").text
        '/tmp\\n'
    """

    def __init__(self, proc: subprocess.Popen, backend: str, limits: Limits, stderr: Any, on_close: list[list[str]]):
        self.backend = backend
        self.limits = limits
        self._proc = proc
        self._stderr = stderr
        self._on_close = on_close
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
        if self._pidns is not None:
            _wait_until_gone(self._pidns)
        for stream in (self._proc.stdin, self._proc.stdout, self._stderr):
            try:
                stream.close()
            except OSError:
                pass
        for argv in self._on_close:
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60, check=False,
                           env=_docker_env())

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


def _bubblewrap(limits: Limits) -> Sandbox:
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable("bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; "
                                 "`make setup` does it)")
    if not Path("/usr/bin/python3").exists() and shutil.which("python3", path="/usr/bin:/bin") is None:
        raise SandboxUnavailable("the bubblewrap sandbox runs the host's /usr/bin/python3, which is missing")
    disk = limits.disk_mb * 1024 * 1024
    args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--die-with-parent", "--new-session", "--clearenv", "--setenv", "PATH", "/usr/sbin:/usr/bin:/sbin:/bin",
            "--hostname", HOSTNAME, "--ro-bind", "/usr", "/usr"]
    for name in TOP_DIRS:
        path = Path("/", name)
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev",
             "--size", str(disk), "--tmpfs", "/.sandbox/root", "--size", str(disk), "--tmpfs", "/.sandbox/upper",
             "--tmpfs", "/.sandbox/host-etc",
             # The setup's own tools (awk) resolve through /etc/alternatives on Debian.
             "--ro-bind-try", "/etc/alternatives", "/etc/alternatives"]
    for name in ETC_ENTRIES:
        args += ["--ro-bind-try", f"/etc/{name}", f"/.sandbox/host-etc/{name}"]
    caps = ",".join(f"+{c}" for c in KEEP_CAPS)
    # Scripts and options travel in files (bwrap --file, --args), so `ps` in the sandbox shows short lines.
    values = {"limits": json.dumps(limits.rlimits()), "host": HOSTNAME, "shm": str(disk // 4), "caps": caps,
              "masks": "\n".join(_closed_dirs())}
    script = "".join(f"{k}={shlex.quote(v)}\n" for k, v in values.items()) + _SETUP
    setup, supervisor = _data_fd(script.encode()), _data_fd(_supervisor_source().encode())
    args += ["--file", str(setup), "/.sandbox/setup.sh", "--file", str(supervisor), "/.sandbox/supervisor.py",
             "--cap-add", "ALL"]
    argfile = _data_fd(b"".join(a.encode() + b"\0" for a in args))
    fds = [setup, supervisor, argfile]
    try:
        if os.geteuid() == 0:
            fds.append(_mapped_userns())
            proc, stderr = _popen(["nsenter", f"--user=/proc/self/fd/{fds[-1]}", "--setuid", "0", "--setgid", "0",
                                   "--", "bwrap", "--args", str(argfile), "--", "/bin/sh", "/.sandbox/setup.sh"],
                                  {"PATH": os.defpath}, pass_fds=fds)
        else:
            proc, stderr = _popen(["bwrap", "--unshare-user", "--uid", "0", "--gid", "0", "--args", str(argfile),
                                   "--", "/bin/sh", "/.sandbox/setup.sh"], {"PATH": os.defpath}, pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    return Sandbox(proc, "bubblewrap", limits, stderr, [])


def _docker(limits: Limits, image: str) -> Sandbox:
    name = f"agentinstruct-os-{uuid.uuid4().hex[:12]}"
    run = ["docker", "run", "-d", "--rm", "--name", name, "--network", "none", "--hostname", HOSTNAME,
           "--pids-limit", str(limits.processes), "--memory", f"{limits.memory_mb}m",
           "--memory-swap", f"{limits.memory_mb}m", "--security-opt", "no-new-privileges",
           "--label", "agentinstruct.builders.os.sandbox=os", image, "sleep", "infinity"]
    started = subprocess.run(run, capture_output=True, text=True, timeout=120, check=False, env=_docker_env())
    if started.returncode != 0:
        raise SandboxUnavailable(f"docker could not start {image!r}: {started.stderr.strip()[-1000:]} "
                                 f"(build the image with: docker build -t {DEFAULT_DOCKER_IMAGE} builders/os/data)")
    proc, stderr = _popen(["docker", "exec", "-i", name, "python3", "-I", "-S", "-c", _supervisor_source(),
                           json.dumps(limits.rlimits())], _docker_env())
    return Sandbox(proc, "docker", limits, stderr, [["docker", "rm", "-f", name]])


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


def open_sandbox(backend: str = "auto", limits: Limits = Limits(), docker_image: str = DEFAULT_DOCKER_IMAGE) -> Sandbox:
    """Start a fresh sandbox on ``backend`` (``auto``, ``bubblewrap`` or ``docker``).

    Example (needs bubblewrap):
        >>> with open_sandbox("bubblewrap", Limits(command_timeout=5)) as box:  # doctest: +SKIP
        ...     box.shell("sleep 60").note
        'the command did not finish within 5 seconds and was interrupted'
    """
    chosen = resolve_backend(backend)
    return _bubblewrap(limits) if chosen == "bubblewrap" else _docker(limits, docker_image)

