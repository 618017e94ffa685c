"""What the machine allows: the CPU cores this process may use, and whether a file can be written.

Small checks shared by the shell (`train`, `serve`, the corpus workers), so that each rule is made
once: thread counts follow the CPU *affinity* (a container or ``taskset`` gives fewer cores than
``os.cpu_count()`` reports), and an output that cannot be written fails in one line *before* the
slow work, not after it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from improv.errors import ImprovError


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
    if target.exists() and not os.access(target, os.W_OK):
        raise ImprovError(f"cannot write {path}: the file is read-only")
