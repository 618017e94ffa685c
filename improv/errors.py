"""The exceptions improv raises on bad input.

Every error a user can cause is an ``ImprovError`` whose message is one line naming the problem
(the bad key, file, port or value). The command line prints it as ``improv: error: ...`` and exits
with status 2, never with a traceback.
"""

from __future__ import annotations


# How to get torch, which training and evaluation need and playing never does. Not `pip install
# "improv[train]"`: `improv` on PyPI is another package (this one is improv-midi).
TORCH_HINT = 'pip install -e ".[train]" in a clone of improv (on Linux without a GPU, first: pip install torch --index-url https://download.pytorch.org/whl/cpu)'


class ImprovError(Exception):
    """Base class: a problem with the user's input, reported as one line."""


class ConfigError(ImprovError):
    """A config file or --set override names an unknown key or a bad value."""


class MIDIConversionError(ImprovError):
    """A MIDI (or music21) file could not be turned into notes."""


class CheckpointError(ImprovError):
    """A checkpoint file is missing, truncated, of another format version, or not a checkpoint."""


class PortError(ImprovError):
    """A MIDI port name matches nothing, or several ports."""


# What to do when no MIDI system runs (a server or container without a sound card, a fresh Linux
# with the ALSA sequencer not loaded): a newcomer's first `improv ports` or `improv serve` ends here.
MIDI_SYSTEM_HINT = (
    "start one: JACK with `jackd -d dummy &` (no sound card needed; `jackd -d alsa` with one), then --api jack, "
    "or the ALSA sequencer with `sudo modprobe snd-seq`; `improv serve --virtual` then makes ports of its own, "
    "and `improv demo` needs no MIDI system at all"
)


class NoMidiSystem(PortError):
    """No MIDI system (ALSA, JACK, CoreMIDI, WinMM) can start here; the message says how to get one."""


class TrainError(ImprovError):
    """Bad training input: no data, nothing to resume, a changed corpus."""


def one_line(exc: BaseException) -> str:
    """An exception as one short line, ``Type: message`` (for a reason in a report)."""
    text = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
