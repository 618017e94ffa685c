"""Typed settings, loaded from ``config.yaml`` and ``--set section.key=value`` overrides.

The dataclass defaults below are the defaults; the repository's commented ``config.yaml`` holds the
same values (a test keeps the two identical). An unknown section or key, or a value of the wrong
type, is a ``ConfigError`` naming the key and the value (shortened: a value is never echoed whole).

Hostile input stays bounded: a config file is read only if it is a regular file of at most
``MAX_FILE_BYTES`` in UTF-8, a ``--set`` value is at most ``MAX_VALUE_CHARS``; what YAML builds is
walked once, counting every node an alias repeats, and refused past ``MAX_NODES`` or ``MAX_DEPTH``
(an alias bomb is a few hundred bytes that expand to billions of nodes: walking or printing it
would never end); keys must be text; and a number must be finite (``.inf`` as a timeout hung).

Each section belongs to one part of improv, and most modules receive only the section they use
(``corpus.load_corpus`` its ``CorpusSettings``, the ``Tokenizer`` its ``TokenizerSettings``, the
engine its ``ServeSettings``; ``generate`` gets options the command built from its sections). A few
take the whole ``Settings`` because their job spans sections: ``train.train`` (tokenizer, corpus,
model, train), ``evaluate.run_eval`` (corpus, sample, eval) and the demo (corpus, serve, demo).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from improv.errors import ConfigError
from improv.settings.bounded_yaml import MAX_VALUE_CHARS, check_tree, read_bounded, safe_load, shown
from improv.settings.sections import Settings


def load_settings(path: str | os.PathLike[str] | None = None, overrides: list[str] | None = None) -> Settings:
    """Defaults, then the YAML file (if any), then ``section.key=value`` overrides, validated."""
    tree: dict[str, Any] = {}
    if path is not None:
        tree = _read_yaml(Path(path))
    for item in overrides or []:
        section, key, value = _parse_override(item)
        check_tree(value, f"--set {section}.{key}")
        tree.setdefault(section, {})
        if not isinstance(tree[section], dict):
            tree[section] = {}
        tree[section][key] = value
    return settings_from_dict(tree)


def settings_from_dict(tree: dict[str, Any]) -> Settings:
    """Build ``Settings`` from a nested dict, rejecting unknown keys and bad values."""
    if not isinstance(tree, dict):
        raise ConfigError(f"config must be a mapping of sections, got {type(tree).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Settings)}
    built: dict[str, Any] = {}
    for name, values in tree.items():
        if not isinstance(name, str):
            raise ConfigError(f"config section names are text, got {shown(name)} ({type(name).__name__})")
        if name not in sections:
            raise ConfigError(f"unknown config section {shown(name)}{_did_you_mean(name, sections)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"config section {name!r} must be a mapping, got {shown(values)}")
        built[name] = _build_section(name, _section_type(name), values)
    return Settings(**built)


def settings_to_dict(settings: Any) -> dict[str, Any]:
    """Plain nested dict (for checkpoints and --json output)."""
    return dataclasses.asdict(settings)


def section_from_dict(cls: type, values: dict[str, Any], section: str = "") -> Any:
    """Rebuild one section (e.g. from a checkpoint), with the same validation as the config file."""
    return _build_section(section or cls.__name__, cls, values)


def _section_type(name: str) -> type:
    return get_type_hints(Settings)[name]


def _build_section(section: str, cls: type, values: dict[str, Any]) -> Any:
    hints = get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if not isinstance(key, str):
            raise ConfigError(f"config keys are text, got {shown(key)} ({type(key).__name__}) in section {section!r}")
        if key not in hints:
            raise ConfigError(f"unknown config key {section}.{shown(key)[1:-1]}{_did_you_mean(key, hints)}")
        kwargs[key] = _coerce(f"{section}.{key}", hints[key], value)
    obj = cls(**kwargs)
    check_section(section, obj)
    return obj


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check ``value`` against a type hint; ints are accepted for floats, nothing else is converted."""
    origin = get_origin(hint)
    if origin is Literal:
        choices = get_args(hint)
        if value not in choices:
            raise ConfigError(f"bad value for {key}: {shown(value)} (choose one of {', '.join(map(repr, choices))})")
        return value
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, option, value)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin in (list, typing.List):
        (item_hint,) = get_args(hint)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # `--set train.data=music21:bach` means a list of one
        if not isinstance(value, list):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected a list)")
        return [_coerce(f"{key}[{i}]", item_hint, v) for i, v in enumerate(value)]
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected true or false)")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected a whole number)")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected a number)")
        try:
            number = float(value)
        except OverflowError:  # an int beyond any float
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected a finite number)")
        return number
    if hint is str:
        if value is None:
            return ""
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"bad value for {key}: {shown(value)} (expected text)")
        return str(value)
    raise ConfigError(f"cannot check {key}: unsupported type {hint!r}")  # a bug in improv, not the user's


# Ranges that types alone do not express: (section, key) -> (predicate, what it must be).
MAX_SEED = 2**32 - 1  # numpy's generators take seeds below 2**32
MAX_PORT = 65535  # a TCP port

_RANGES: dict[tuple[str, str], tuple[typing.Callable[[Any], bool], str]] = {
    ("tokenizer", "steps_per_beat"): (lambda v: v >= 1 and v % 12 == 0, "a positive multiple of 12"),
    ("tokenizer", "max_beats"): (lambda v: 8 <= v <= 64, "between 8 and 64"),
    ("tokenizer", "velocity_bins"): (lambda v: 1 <= v <= 127, "between 1 and 127"),
    ("corpus", "workers"): (lambda v: v >= 0, ">= 0"),
    ("corpus", "file_timeout_s"): (lambda v: 0 < v <= 86400, "between 0 and 86400 (exclusive of 0)"),
    ("corpus", "max_file_mb"): (lambda v: 0 < v <= 4096, "between 0 and 4096 (exclusive of 0)"),
    ("corpus", "worker_memory_mb"): (lambda v: 64 <= v <= 1 << 20, "between 64 and 1048576"),
    ("model", "embed_dim"): (lambda v: v >= 1, ">= 1"),
    ("model", "hidden_size"): (lambda v: v >= 1, ">= 1"),
    ("model", "num_layers"): (lambda v: v >= 1, ">= 1"),
    ("model", "dropout"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train", "epochs"): (lambda v: v >= 1, ">= 1"),
    ("train", "max_steps"): (lambda v: v >= 0, ">= 0"),
    ("train", "batch_size"): (lambda v: v >= 1, ">= 1"),
    ("train", "chunk_len"): (lambda v: v >= 2, ">= 2"),
    ("train", "lr"): (lambda v: v > 0, "> 0"),
    ("train", "finetune_lr"): (lambda v: v > 0, "> 0"),
    ("train", "weight_decay"): (lambda v: v >= 0, ">= 0"),
    ("train", "warmup_steps"): (lambda v: v >= 0, ">= 0"),
    ("train", "min_lr_ratio"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("train", "grad_clip"): (lambda v: v > 0, "> 0"),
    ("train", "val_fraction"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train", "transpose"): (lambda v: 0 <= v <= 24, "between 0 and 24"),
    ("train", "tempo_stretch"): (lambda v: 0 <= v < 1, "in [0, 1)"),
    ("train", "patience"): (lambda v: v >= 0, ">= 0"),
    ("train", "crop"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("train", "val_every"): (lambda v: v >= 0, ">= 0"),
    ("train", "threads"): (lambda v: v >= 0, ">= 0"),
    ("train", "pair_bars"): (lambda v: 1 <= len(v) <= 4 and all(1 <= n <= 16 for n in v), "1 to 4 lengths, each 1 to 16 bars"),
    ("train", "seed"): (lambda v: 0 <= v <= MAX_SEED, f"between 0 and {MAX_SEED} (2**32 - 1)"),
    ("train", "device"): (lambda v: v in ("auto", "cpu", "mps") or v.startswith("cuda"), "auto, cpu, cuda[:N] or mps"),
    ("sample", "temperature"): (lambda v: v > 0, "> 0"),
    ("sample", "top_k"): (lambda v: v >= 0, ">= 0"),
    ("sample", "top_p"): (lambda v: 0 < v <= 1, "in (0, 1]"),
    ("generate", "length"): (lambda v: v >= 1, ">= 1"),
    ("generate", "bpm"): (lambda v: 10 <= v <= 400, "between 10 and 400"),
    ("generate", "program"): (lambda v: 0 <= v <= 127, "between 0 and 127"),
    ("generate", "min_length"): (lambda v: v >= -1, ">= -1 (-1 = the whole --length)"),
    ("eval", "markov_order"): (lambda v: v >= 1, ">= 1"),
    ("eval", "samples"): (lambda v: v >= 1, ">= 1"),
    ("eval", "sample_length"): (lambda v: v >= 8, ">= 8"),
    ("serve", "api"): (lambda v: v in ("", "alsa", "jack", "coremidi", "winmm"), "one of alsa, jack, coremidi, winmm"),
    ("serve", "channel"): (lambda v: 1 <= v <= 16, "between 1 and 16"),
    ("serve", "listen_channel"): (lambda v: 0 <= v <= 16, "between 0 and 16"),
    ("serve", "performer_program"): (lambda v: 0 <= v <= 127, "between 0 and 127"),
    ("serve", "program"): (lambda v: 0 <= v <= 127, "between 0 and 127"),
    ("serve", "silence_ms"): (lambda v: 0 <= v <= 60000, "between 0 and 60000"),
    ("serve", "silence_beats"): (lambda v: 0 <= v <= 64, "between 0 and 64"),
    ("serve", "answer_grid_beats"): (lambda v: 0 <= v <= 16, "between 0 and 16"),
    ("serve", "answer_lead_beats"): (lambda v: 0 <= v <= 16, "between 0 and 16"),
    ("serve", "max_call_beats"): (lambda v: v >= 0, ">= 0"),
    ("serve", "min_call_notes"): (lambda v: v >= 1, ">= 1"),
    ("serve", "response_length"): (lambda v: v >= 0, ">= 0"),
    ("serve", "max_response_events"): (lambda v: v >= 1, ">= 1"),
    ("serve", "follow_velocity"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("serve", "lowest_pitch"): (lambda v: 0 <= v <= 127, "between 0 and 127"),
    ("serve", "highest_pitch"): (lambda v: 0 <= v <= 127, "between 0 and 127"),
    ("serve", "window"): (lambda v: v >= 1, ">= 1"),
    ("serve", "bpm"): (lambda v: 10 <= v <= 400, "between 10 and 400"),
    ("serve", "link_quantum"): (lambda v: 1 <= v <= 16, "between 1 and 16 beats"),
    ("serve", "cc_temperature"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_length"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_end_call"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_panic"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "temperature_min"): (lambda v: v > 0, "> 0"),
    ("serve", "temperature_max"): (lambda v: v > 0, "> 0"),
    ("serve", "stuck_note_s"): (lambda v: v > 0, "> 0"),
    ("serve", "echo_ms"): (lambda v: 0 <= v <= 1000, "between 0 and 1000"),
    ("serve", "lookahead_ms"): (lambda v: 10 <= v <= 10000, "between 10 and 10000"),
    ("serve", "spin_ms"): (lambda v: 0 <= v <= 20, "between 0 and 20"),
    ("serve", "realtime_priority"): (lambda v: 0 <= v <= 99, "between 0 and 99"),
    ("serve", "reconnect_s"): (lambda v: v > 0, "> 0"),
    ("serve", "chord_ms"): (lambda v: 0 <= v <= 200, "between 0 and 200"),
    ("serve", "imitation"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("serve", "max_voices"): (lambda v: 0 <= v <= 16, "between 0 and 16"),
    ("serve", "cc_voice"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_imitation"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "late_ms"): (lambda v: 1 <= v <= 1000, "between 1 and 1000"),
    ("serve", "swing"): (lambda v: v == 0 or 1 <= v <= 4, "0 (the call's) or between 1 and 4"),
    ("serve", "output_latency_ms"): (lambda v: 0 <= v <= 500, "between 0 and 500"),
    ("serve", "keyless_voices"): (lambda v: all(isinstance(n, str) and 0 < len(n) <= 100 for n in v), "voice names (1-100 characters)"),
    ("serve", "output_latency_by_velocity"): (lambda v: all(len(p) == 2 and 1 <= p[0] <= 127 and 0 <= p[1] <= 500 for p in v), "[velocity 1-127, ms 0-500] pairs"),
    **{("serve", f"rule_{name}"): (lambda v: 0 <= v <= 4, "between 0 and 4") for name in ("key", "texture", "register", "motif", "cadence", "opening", "dynamics", "density", "echo", "voicing", "variety")},
    ("serve", "density"): (lambda v: 0.25 <= v <= 4, "between 0.25 and 4"),
    ("serve", "cc_density"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "adapt"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("serve", "forget_after"): (lambda v: 0 <= v <= 86400, "between 0 and 86400 seconds"),
    ("serve", "cc_adapt"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_forget"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "decide_ms"): (lambda v: 1 <= v <= 1000, "between 1 and 1000"),
    ("serve", "bar_beats"): (lambda v: 1 <= v <= 16, "between 1 and 16"),
    ("serve", "hold_bars"): (lambda v: 1 <= v <= 64, "between 1 and 64"),
    ("serve", "mutate"): (lambda v: 0 <= v <= 1, "in [0, 1]"),
    ("serve", "cc_mode"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("serve", "cc_mutate"): (lambda v: -1 <= v <= 127, "a controller number 0-127, or -1 for off"),
    ("demo", "calls"): (lambda v: 1 <= v <= 1000, "between 1 and 1000"),
    ("demo", "phrase_beats"): (lambda v: 2 <= v <= 64, "between 2 and 64"),
    ("demo", "barge_every"): (lambda v: v >= 0, ">= 0"),
    ("demo", "bpm"): (lambda v: 20 <= v <= 300, "between 20 and 300"),
    ("demo", "breath_beats"): (lambda v: v >= 0, ">= 0"),
    ("demo", "performer_channel"): (lambda v: 1 <= v <= 16, "between 1 and 16"),
    ("render", "sample_rate"): (lambda v: 8000 <= v <= 192000, "between 8000 and 192000"),
    ("render", "peak_dbfs"): (lambda v: -40 <= v <= 0, "between -40 and 0"),
    ("monitor", "port"): (lambda v: 0 <= v <= MAX_PORT, f"between 0 and {MAX_PORT}"),
    ("monitor", "seconds"): (lambda v: 2 <= v <= 600, "between 2 and 600"),
}


def _serve_cross_checks(s: Any) -> str | None:
    """What the serve section's keys must agree on (each alone may be in range)."""
    if s.lowest_pitch > s.highest_pitch:
        return f"serve.lowest_pitch ({s.lowest_pitch}) is above serve.highest_pitch ({s.highest_pitch})"
    if s.temperature_min > s.temperature_max:
        return f"serve.temperature_min ({s.temperature_min}) is above serve.temperature_max ({s.temperature_max})"
    used: dict[int, str] = {64: "the sustain pedal"}  # the engine reads CC 64 as the pedal first
    for key in [f.name for f in dataclasses.fields(s) if f.name.startswith("cc_")]:
        number = getattr(s, key)
        if number < 0:
            continue
        if number in used:
            return f"serve.{key} ({number}) is the same controller as {used[number]} (each control needs its own number; -1 = off)"
        used[number] = f"serve.{key}"
    return None


# Checks between keys of one section, after its ranges: section -> functions returning a one-line
# problem, or None. A section that needs one adds its function here.
_CROSS_CHECKS: dict[str, list[typing.Callable[[Any], str | None]]] = {"serve": [_serve_cross_checks]}


def check_section(section: str, obj: Any) -> None:
    """A built section's ranges, then what its keys must agree on; ``ConfigError`` on the first problem.
    (Also for sections built in code, e.g. with ``dataclasses.replace``, which skips the loader.)"""
    _check_ranges(section, obj)
    for check in _CROSS_CHECKS.get(section, ()):
        problem = check(obj)
        if problem is not None:
            raise ConfigError(problem)


def _check_ranges(section: str, obj: Any) -> None:
    for f in dataclasses.fields(obj):
        rule = _RANGES.get((section, f.name))
        if rule is None:
            continue
        predicate, what = rule
        value = getattr(obj, f.name)
        if not predicate(value):
            raise ConfigError(f"bad value for {section}.{f.name}: {shown(value)} (must be {what})")


def _read_yaml(path: Path) -> dict[str, Any]:
    data = read_bounded(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    try:
        tree = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}") from None
    except ConfigError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    if tree is None:
        return {}
    if not isinstance(tree, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections")
    check_tree(tree, f"config file {path}")
    return tree


def _parse_override(item: str) -> tuple[str, str, Any]:
    """``section.key=value``; the value is read as YAML, so 3, 0.5, true, [a, b] mean what they look like."""
    name, sep, raw = item.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError(f"bad override {shown(item)} (expected section.key=value)")
    if len(raw) > MAX_VALUE_CHARS:
        raise ConfigError(f"--set {section}.{key}: the value is {len(raw)} characters long (at most {MAX_VALUE_CHARS})")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not YAML: take it as text
    except ConfigError as exc:
        raise ConfigError(f"--set {section}.{key}: {exc}") from None
    return section, key, value


def _did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (known: {', '.join(sorted(known))})"
