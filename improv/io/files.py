"""Files, safely: the one writable-path check, the one atomic write, and reading a file that may be
anything a folder can hold.

* ``check_writable`` fails in one line *before* slow work (a training run, a session), not after.
* ``write_atomic`` writes a fresh temporary file in the target's folder (an unpredictable name,
  created exclusively) and renames it over the target: a kill at any moment leaves the old file or
  the new one, never half of one, and a symlink at the target is replaced, never written through
  (a link planted at ``--out`` cannot make improv overwrite the file it points to).
* a write killed outright (SIGKILL, power loss) leaves its temporary file; ``write_atomic(...,
  clean=True)`` removes such leftovers beside its target first: a writer holds a lock on its
  temporary file while it writes, so one that can be locked has no writer left.
* ``read_regular_file`` reads a regular file of bounded size: a FIFO named ``.mid`` (which would
  block forever), a device such as ``/dev/zero`` (endless), a folder or a file over the limit is a
  ``FileProblem`` naming what it is, never a hang or a memory blow-up.
"""

from __future__ import annotations

import glob
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Callable

from improv.errors import ImprovError


class FileProblem(ImprovError):
    """A file that cannot be read as asked (not a regular file, too big, unreadable)."""


def check_writable(path: str | os.PathLike[str], *, create_folder: bool = True) -> None:
    """Fail now, in one line, if ``path`` could not be written later.

    Creates the folder (when ``create_folder``; else it must exist), writes and removes a probe
    file beside ``path``, and checks that an existing ``path`` is a file that may be overwritten.
    """
    target = Path(path).expanduser()
    folder = target.parent
    if target.is_dir():
        raise ImprovError(f"cannot write {path}: it is a folder")
    if create_folder:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ImprovError(f"cannot write {path}: cannot create its folder {folder} ({exc.strerror or exc})") from None
    elif not folder.is_dir():
        raise ImprovError(f"cannot write {path}: its folder does not exist")
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ImprovError(f"cannot write {path}: no file can be written in {folder} ({exc.strerror or exc})") from None
    if target.exists() and not target.is_symlink() and not os.access(target, os.W_OK):
        raise ImprovError(f"cannot write {path}: the file is read-only")


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], None], *, mode: int | None = None, clean: bool = False) -> None:
    """Write ``data`` (bytes, or a function that writes to a binary file) to ``path`` atomically.

    The temporary file is made by ``mkstemp`` in the target's folder (never a predictable name),
    locked while it is written, flushed to disk, then renamed over ``path``. Any failure removes
    it and re-raises. ``clean``: first remove what killed writers left beside ``path`` (it lists
    the folder: for a few big files such as checkpoints, not for a cache of thousands).
    """
    target = Path(path)
    if clean:
        remove_stale_temporaries(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    _lock(fd, blocking=True)
    try:
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())  # mkstemp makes it private
        with os.fdopen(fd, "wb") as handle:
            if callable(data):
                data(handle)
            else:
                handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def remove_stale_temporaries(path: str | os.PathLike[str]) -> list[str]:
    """Remove ``write_atomic``'s temporary files of ``path`` that no live writer holds (a killed
    one's); the names removed."""
    target = Path(path)
    removed = []
    try:
        candidates = list(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))
    except OSError:
        return removed
    for tmp in candidates:
        try:
            fd = os.open(tmp, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            continue  # gone already, or a link: not ours to remove
        try:
            if stat.S_ISREG(os.fstat(fd).st_mode) and _lock(fd, blocking=False):
                os.unlink(tmp)
                removed.append(tmp.name)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def _lock(fd: int, blocking: bool) -> bool:
    """An exclusive lock on ``fd`` (released when the file is closed or its process dies)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks, and no cleaning (nothing is ever removed)
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError:
        return False
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_regular_file(path: str | os.PathLike[str], limit_bytes: int | None = None) -> bytes:
    """The bytes of a regular file of at most ``limit_bytes``; anything else is a ``FileProblem``.

    Opened without blocking (a FIFO would otherwise wait for a writer forever), then checked on
    the open descriptor, so a file swapped for something else in between cannot slip through.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise FileProblem(_os_reason(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(f"not a regular file ({_kind(info.st_mode)})")
        if limit_bytes is not None and info.st_size > limit_bytes:
            raise FileProblem(f"too big ({info.st_size / 1e6:.1f} MB; the limit is {limit_bytes / 1e6:g} MB)")
        chunks, size = [], 0
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            size += len(chunk)
            if limit_bytes is not None and size > limit_bytes:  # grew while we read it
                raise FileProblem(f"too big (over the {limit_bytes / 1e6:g} MB limit)")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise FileProblem(_os_reason(exc)) from None
    finally:
        os.close(fd)


def file_problem(path: str | os.PathLike[str], limit_bytes: int | None = None) -> str | None:
    """Why ``path`` could not be read by ``read_regular_file`` (without reading it), or None."""
    try:
        info = os.stat(path)
    except OSError as exc:
        return _os_reason(exc)
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file ({_kind(info.st_mode)})"
    if limit_bytes is not None and info.st_size > limit_bytes:
        return f"too big ({info.st_size / 1e6:.1f} MB; the limit is {limit_bytes / 1e6:g} MB)"
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISDIR, "a folder"), (stat.S_ISSOCK, "a socket")):  # fmt: skip
        if test(mode):
            return name
    return "not a plain file"


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if exc.errno == errno.ENOENT:
        return "missing (a dangling link?)"
    return f"cannot read the file: {exc.strerror or exc}"
