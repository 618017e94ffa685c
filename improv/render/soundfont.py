"""Where a General MIDI SoundFont is: the one given, ``$IMPROV_SOUNDFONT``, or the usual places of
each system (the folders its packages install into, and the ones people are told to use).

``soundfont_places`` is pure (the system, the environment and the home folder are arguments), so
every system's list is tested here; ``find_soundfont`` only looks at the files.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Mapping

from improv.errors import ImprovError

SUFFIXES = (".sf2", ".sf3")
# Names that say "the General MIDI bank" (a default link, or a well-known GM SoundFont), best first;
# any other SoundFont in those folders comes after them, by name.
PREFERRED = ("default-gm", "default", "fluidr3_gm", "generaluser", "musescore_general", "timgm6mb", "fluidr3")


class NoSoundFont(ImprovError):
    """No SoundFont given and none found."""


def soundfont_places(system: str, env: Mapping[str, str], home: Path) -> list[Path]:
    """Folders (or files) to search, in order, for ``system`` (``sys.platform``)."""
    places: list[Path] = []
    if system.startswith("win"):
        for var in ("USERPROFILE", "LOCALAPPDATA", "APPDATA", "ProgramData", "ProgramFiles", "ProgramFiles(x86)"):
            base = env.get(var)
            if base:
                places += [Path(base) / "SoundFonts", Path(base) / "soundfonts", Path(base) / "FluidSynth" / "share" / "soundfonts"]
        places += [Path("C:/soundfonts"), Path("C:/SoundFonts"), home / "Documents" / "SoundFonts"]
    elif system == "darwin":
        places += [
            home / "Library" / "Audio" / "Sounds" / "Banks",
            Path("/Library/Audio/Sounds/Banks"),
            Path("/opt/homebrew/share/soundfonts"),
            Path("/opt/homebrew/share/fluid-synth"),
            Path("/usr/local/share/soundfonts"),
            Path("/usr/local/share/fluid-synth"),
        ]
    else:  # Linux and the other Unixes
        data_home = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
        places += [data_home / "soundfonts", data_home / "sounds" / "sf2"]
        places += [
            Path("/usr/share/sounds/sf2"),  # Debian, Ubuntu: fluid-soundfont-gm, timgm6mb-soundfont
            Path("/usr/share/sounds/sf3"),  # Debian: musescore-general-soundfont
            Path("/usr/share/soundfonts"),  # Fedora, Arch, openSUSE
            Path("/usr/local/share/soundfonts"),
        ]
    places.append(home / "soundfonts")
    seen: set[str] = set()
    unique = []
    for place in places:
        key = os.path.normpath(str(place)).lower() if system.startswith("win") else os.path.normpath(str(place))
        if key not in seen:
            seen.add(key)
            unique.append(place)
    return unique


def soundfonts_in(folder: Path) -> list[Path]:
    """The SoundFonts in ``folder`` (not its subfolders), General MIDI names first."""
    try:
        files = [p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file()]
    except OSError:
        return []

    def rank(path: Path) -> tuple[int, str]:
        stem = path.stem.lower()
        for i, name in enumerate(PREFERRED):
            if stem.startswith(name):
                return i, stem
        return len(PREFERRED), stem

    return sorted(files, key=rank)


def find_soundfont(
    given: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    system: str | None = None,
    home: Path | None = None,
) -> Path:
    """The SoundFont to play with: ``given`` (must exist), else ``$IMPROV_SOUNDFONT``, else the
    first found in ``soundfont_places``; ``NoSoundFont`` (one line, saying how to get one) if none."""
    env = os.environ if env is None else env
    system = sys.platform if system is None else system
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise NoSoundFont(f"SoundFont not found: {given}")
        return path
    named = env.get("IMPROV_SOUNDFONT")
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise NoSoundFont(f"$IMPROV_SOUNDFONT names no file: {named}")
        return path
    for place in soundfont_places(system, env, home or Path.home()):
        found = [place] if place.suffix.lower() in SUFFIXES and place.is_file() else soundfonts_in(place)
        if found:
            return found[0]
    raise NoSoundFont(f"no General MIDI SoundFont found: {how_to_get_soundfont(system)}")


def how_to_get_soundfont(system: str | None = None) -> str:
    system = sys.platform if system is None else system
    if system.startswith("win"):
        return r"save one (e.g. GeneralUser GS or FluidR3_GM) as C:\soundfonts\default.sf2, or name it with --soundfont or $IMPROV_SOUNDFONT"
    if system == "darwin":
        return "save one (e.g. GeneralUser GS or FluidR3_GM) in ~/Library/Audio/Sounds/Banks, or name it with --soundfont or $IMPROV_SOUNDFONT"
    return "sudo apt install fluid-soundfont-gm (Debian/Ubuntu; Fedora: fluid-soundfont-gm, Arch: soundfont-fluid), or name one with --soundfont or $IMPROV_SOUNDFONT"
