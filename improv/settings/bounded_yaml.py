"""YAML from the outside world, within bounds: how much is read, how deep it nests, how far an alias
may repeat what it names, and how much of a value a message may show.

An alias bomb is a few hundred bytes of YAML whose anchors name lists of aliases of lists: PyYAML
builds it cheaply (the repeats are shared), but anything that walks or prints it (a check, an
error message) goes through billions of values. So what YAML built is walked once here, every
repeat counted, and refused past ``MAX_NODES``; nesting stops at ``MAX_DEPTH`` while PyYAML
composes (it recurses per level); a file is read only if it is a regular file of at most
``MAX_FILE_BYTES``; and messages show values through ``shown`` (reprlib: bounded, however large
or shared the value).
"""

from __future__ import annotations

import os
import reprlib
from pathlib import Path
from typing import Any

import yaml

from improv.errors import ConfigError

MAX_FILE_BYTES = 1 << 20  # improv's own config.yaml is 15 kB
MAX_VALUE_CHARS = 10_000
MAX_NODES = 100_000
MAX_DEPTH = 32

_SHOW = reprlib.Repr()  # values in messages: bounded however large or shared the value is
_SHOW.maxstring, _SHOW.maxother, _SHOW.maxlist, _SHOW.maxdict, _SHOW.maxlevel = 80, 80, 6, 6, 3


def shown(value: Any) -> str:
    """``repr(value)``, shortened (an alias bomb's expansion is never printed)."""
    return _SHOW.repr(value)


def read_bounded(path: Path) -> bytes:
    """The bytes of a regular file of at most MAX_FILE_BYTES (``io.files.read_regular_file``'s
    rules; settings sit below io, so the few lines are here): a FIFO would block forever,
    /dev/zero never end."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"cannot read config file {path}: not a regular file")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"cannot read config file {path}: too big (more than {MAX_FILE_BYTES // 1024} kB)")
    return data


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader, stopped at ``MAX_DEPTH`` levels while it composes (it recurses per
    level: 1,000 levels were a RecursionError, after seconds of work)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(f"nested more than {MAX_DEPTH} levels deep; refused")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def safe_load(text: str) -> Any:
    """``yaml.safe_load`` within the bounds; a value YAML itself cannot build (an integer of
    thousands of digits) is a ``ConfigError`` too."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except (ValueError, OverflowError, RecursionError) as exc:
        raise ConfigError(f"a value YAML cannot read ({type(exc).__name__})") from None
    finally:
        loader.dispose()


def check_tree(value: Any, where: str) -> None:
    """Walk what YAML built, every node an alias repeats counted again, and refuse it past
    ``MAX_NODES`` nodes or ``MAX_DEPTH`` levels (before anything else walks or prints it)."""
    nodes = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise ConfigError(f"{where}: more than {MAX_NODES} values (a YAML alias bomb?); refused")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{where}: nested more than {MAX_DEPTH} levels deep; refused")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for kv in item.items() for v in kv)
        elif isinstance(item, (list, tuple, set)):
            stack.extend((v, depth + 1) for v in item)
