"""The controls file: MIDI-learned bindings and the knobs' last values, kept between sessions.

JSON ``{"bindings": {name: cc}, "values": {name: value}}`` at ``serve.controls_file``, or
``improv/controls.json`` in the user config folder ($XDG_CONFIG_HOME, else ~/.config). Read
within bounds, written atomically; a damaged file is a one-line error naming it, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from improv.errors import ImprovError
from improv.io.files import read_regular_file, write_atomic
from improv.realtime.controls import control_names
from improv.settings.serve_section import ServeSettings

LIMIT = 64 * 1024


def controls_path(s: ServeSettings) -> Path:
    if s.controls_file:
        return Path(s.controls_file).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "improv" / "controls.json"


def load_controls(s: ServeSettings) -> dict[str, dict[str, int]]:
    """The saved controls ({} parts when there is no file yet); only known names, numbers 0-127."""
    path = controls_path(s)
    if not path.exists():
        return {"bindings": {}, "values": {}}
    try:
        data = json.loads(read_regular_file(path, LIMIT))
    except (OSError, ValueError) as exc:
        raise ImprovError(f"cannot read the controls file {path}: {exc}") from None
    names = set(control_names(s))
    out: dict[str, dict[str, int]] = {"bindings": {}, "values": {}}
    for part in out:
        got = data.get(part, {}) if isinstance(data, dict) else {}
        if not isinstance(got, dict):
            raise ImprovError(f"bad controls file {path}: {part} is not a mapping")
        for name, value in got.items():
            if name not in names or isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 127:
                raise ImprovError(f"bad controls file {path}: {part}.{name} = {value!r} (a known control, 0-127)")
            out[part][name] = value
    return out


def save_controls(s: ServeSettings, saved: dict[str, Any]) -> Path:
    path = controls_path(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(saved, indent=1, sort_keys=True) + "\n").encode())
    return path


def describe_controls(s: ServeSettings) -> list[str]:
    """One line per control: its number, learned or configured, and its last value."""
    saved = load_controls(s)
    lines = []
    for name in control_names(s):
        learned = saved["bindings"].get(name)
        number = learned if learned is not None else getattr(s, f"cc_{name}")
        where = "learned" if learned is not None else "serve.cc_" + name
        value = saved["values"].get(name)
        lines.append(f"{name:12} {'off' if number < 0 else f'CC {number}':7} ({where})" + (f" · last value {value}" if value is not None else ""))
    return lines
