"""The first program of every bubblewrap sandbox: builds the episode's root, pivots into it, starts the supervisor.

bwrap runs it as ``python3 -I -S /.sandbox/newroot.py /.sandbox/newroot.settings`` (the host's python3, as root
of the sandbox's user namespace with all of that namespace's capabilities); ``agentinstruct.builders.os.sandbox``
writes the settings (``disk``, ``inodes``, ``masks``, ``top_dirs``, ``etc_dirs``, ``etc_files``, ``host``,
``caps``, ``limits``) with ``marshal`` at a fixed format version, which every Python 3 reads.

- The root lives on one tmpfs (``size=disk``, ``nr_inodes=inodes``): ``/``, the overlays' upper layers over the
  host's read-only ``/usr`` (and ``/bin``, ``/lib*`` where they are directories), ``/usr/local``, ``/dev/shm``;
  so ``disk_mb`` caps everything the sandbox can write, and ``nr_inodes`` the kernel memory empty files take.
- Host directories root may not enter there (``masks``, owned by an unmapped uid) and unreadable directories of
  ``/proc`` become empty ones root can, so ``find /`` does not trip over them, as at a real root prompt.
- ``/etc``: the host files bwrap staged in ``/.sandbox/host-etc`` (``ETC_ENTRIES``), the sandbox's own login
  files (``etc_files``), a generated ``shadow``/``gshadow``, ``hosts``, ``hostname``, an empty ``resolv.conf``.
- ``/dev``: a tmpfs with no room for files holding bwrap's device nodes, symlinks and ptys, and ``/dev/shm``.
- Then ``pivot_root`` into it and detach the staging root, so nothing of it stays reachable, and exec
  ``setpriv`` (capabilities cut to ``caps``) into the supervisor, read from fd 3 opened before the pivot.

Every sandbox pays for what this does, so it does it cheaply: system calls instead of a shell script's forty-odd
processes (``mount``, ``mkdir``, ``cp``, ``awk`` ...), and only modules that cost nothing to import (``json``,
``shutil`` and the ``re`` they pull in took 23 ms of a 64 ms start). Standard library only, Python 3.6 syntax: the
interpreter is the host's.
"""

import ctypes
import marshal
import os
import sys

MS_BIND, MS_REC = 4096, 16384
MNT_DETACH = 2
FS, ROOT, UPPER = "/.sandbox/fs", "/.sandbox/fs/root", "/.sandbox/fs/upper"
DIRS = ("usr", "etc", "root", "home", "tmp", "run/lock", "var/tmp", "var/log", "var/lib", "var/cache", "var/spool",
        "var/mail", "var/opt", "var/local", "var/backups", "srv", "opt", "mnt", "media", "proc", "dev", "sys", "boot",
        ".old")
LOCAL_DIRS = ("bin", "etc", "games", "include", "lib", "man", "sbin", "share", "src")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_LINKS = ("fd", "stdin", "stdout", "stderr", "ptmx")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = (ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_libc.umount2.argtypes = (ctypes.c_char_p, ctypes.c_int)


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "{}: {}".format(what, os.strerror(err)))


def mount(source, target, fstype=None, flags=0, options=None):
    _check(_libc.mount(source.encode(), target.encode(), fstype.encode() if fstype else None, flags,
                       options.encode() if options else None), "mount {} on {}".format(source, target))


def bind(source, target, recursive=False):
    mount(source, target, flags=MS_BIND | (MS_REC if recursive else 0))


def mask(path, inodes=16):
    """An empty directory only root may enter, over ``path``."""
    mount("masked", path, "tmpfs", options="size=4k,nr_inodes={},mode=700".format(inodes))


def overlay(name):
    """``/name`` read-only below, its writes in the tmpfs: at ``name`` under the new root (the cwd)."""
    upper, work = os.path.join(UPPER, name), os.path.join(UPPER, name + ".work")
    os.makedirs(upper, exist_ok=True)
    os.makedirs(work, exist_ok=True)
    mount("overlay", name, "overlay", options="lowerdir=/{},upperdir={},workdir={},userxattr".format(name, upper, work))


def copy_stat(source, target):
    """Mode and times, as ``cp -a --no-preserve=ownership`` keeps them."""
    st = os.stat(source)
    os.chmod(target, st.st_mode & 0o7777)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def copy_tree(source, target):
    """``cp -a --no-preserve=ownership source/. target/``: links as links, modes and times kept; what cannot be
    read is left out (the host files only root may read are exactly the ones to leave out)."""
    os.makedirs(target, exist_ok=True)
    for entry in list(os.scandir(source)):
        dest = os.path.join(target, entry.name)
        try:
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), dest)
            elif entry.is_dir():
                copy_tree(entry.path, dest)
            else:
                with open(entry.path, "rb") as src, open(dest, "wb") as dst:
                    dst.write(src.read())  # /etc's files: small
                copy_stat(entry.path, dest)
        except OSError:
            continue
    copy_stat(source, target)  # as cp -a copies source/. onto target itself


def unreadable_dirs(top, depth=3):
    """Directories under ``top`` (``/proc`` of the sandbox) down to ``depth`` that root may not read, process
    directories left out (they come and go)."""
    found, todo = [], [(top, 1)]
    while todo:
        path, level = todo.pop()
        try:
            entries = list(os.scandir(path))
        except OSError:
            continue
        for entry in entries:
            if level == 1 and (entry.name[:1].isdigit() or entry.name in ("self", "thread-self")):
                continue
            try:
                if not entry.is_dir(follow_symlinks=False):
                    continue
            except OSError:
                continue
            if not os.access(entry.path, os.R_OK):
                found.append(entry.path)
            elif level < depth:
                todo.append((entry.path, level + 1))
    return found


def write(path, text, mode=None):
    with open(path, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def build_etc(settings):
    copy_tree("/.sandbox/host-etc", "etc")
    for name in settings["etc_dirs"]:
        os.makedirs(os.path.join("etc", name), exist_ok=True)
    for name, text in settings["etc_files"].items():
        write(os.path.join("etc", name), text)
    with open("etc/passwd") as f:
        users = [line.split(":")[0] for line in f.read().splitlines()]
    with open("etc/group") as f:
        groups = [line.split(":")[0] for line in f.read().splitlines()]
    write("etc/shadow", "".join(u + ":*:19000:0:99999:7:::\n" for u in users), 0o640)
    write("etc/gshadow", "".join(g + ":*::\n" for g in groups), 0o640)
    write("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{}\n".format(
        settings["host"]))
    write("etc/hostname", settings["host"] + "\n")
    write("etc/resolv.conf", "")
    os.symlink("/proc/self/mounts", "etc/mtab")


def build_dev():
    mount("tmpfs", "dev", "tmpfs", options="size=4k,nr_inodes=64,mode=755")
    for name in DEVICES:
        write("dev/" + name, "")
        bind("/dev/" + name, "dev/" + name)
    for name in DEV_LINKS:
        os.symlink(os.readlink("/dev/" + name), "dev/" + name)  # bwrap's are links; anything else is an error
    os.mkdir("dev/pts")
    os.mkdir("dev/shm")
    bind("/dev/pts", "dev/pts")
    bind(os.path.join(FS, "shm"), "dev/shm")


def pivot():
    """Make the cwd the root of every process here and detach bwrap's staging root from under it."""
    pid = os.fork()  # the pivot_root program: glibc has no pivot_root(), and its syscall number is per architecture
    if pid == 0:
        try:
            os.execvp("pivot_root", ["pivot_root", ".", ".old"])
        finally:
            os._exit(127)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise OSError("pivot_root failed (wait status {})".format(status))
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "umount /.old")
    os.rmdir("/.old")


def main(settings_path):
    with open(settings_path, "rb") as f:
        settings = marshal.load(f)
    os.umask(0o022)
    # The supervisor stays readable as /dev/fd/3 once the staging root is gone.
    supervisor = os.open("/.sandbox/supervisor.py", os.O_RDONLY)
    if supervisor != 3:
        os.dup2(supervisor, 3)  # inheritable
        os.close(supervisor)
    else:
        os.set_inheritable(3, True)
    mount("tmpfs", FS, "tmpfs", options="size={},nr_inodes={},mode=755".format(settings["disk"], settings["inodes"]))
    for path in (ROOT, UPPER, os.path.join(FS, "shm")):
        os.makedirs(path)
    os.chmod(os.path.join(FS, "shm"), 0o1777)
    bind(ROOT, ROOT)  # pivot_root wants the new root to be a mount point
    os.chdir(ROOT)
    for name in DIRS:
        os.makedirs(name, exist_ok=True)
    os.chmod("root", 0o700)
    for name in ("tmp", "var/tmp"):
        os.chmod(name, 0o1777)
    os.symlink("/run", "var/run")
    os.symlink("/run/lock", "var/lock")
    overlay("usr")
    for name in settings["top_dirs"]:
        host = "/" + name
        if os.path.islink(host):
            os.symlink(os.readlink(host), name)
        elif os.path.isdir(host):
            os.mkdir(name)
            overlay(name)
    local = os.path.join(UPPER, "local")
    os.makedirs("usr/local", exist_ok=True)
    os.mkdir(local)
    for name in LOCAL_DIRS:
        os.mkdir(os.path.join(local, name))
    bind(local, "usr/local")
    for path in settings["masks"]:
        if os.path.isdir(ROOT + path):
            mask(ROOT + path)
    build_etc(settings)
    copy_tree("etc/skel", "root")
    os.chmod("root", 0o700)  # the copy gave it skel's mode
    bind("/proc", "proc", recursive=True)
    for path in unreadable_dirs("proc"):
        mask(path)
    build_dev()
    pivot()
    os.execvp("setpriv", ["setpriv", "--bounding-set=-all," + settings["caps"], "--inh-caps=-all",
                          "--ambient-caps=-all", "--", "python3", "-I", "-S", "/dev/fd/3", settings["limits"]])


if __name__ == "__main__":
    main(sys.argv[1])
