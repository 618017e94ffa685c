"""The house: rooms import only from rooms below them, the live path never imports torch, no module
grows past ~400 lines, and the package installs every room (the shipped voices included)."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from improv.music.midi import Track, midi_bytes
from improv.music.notes import Note

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "improv"

# Each room may import from rooms of a lower rank (and from itself), never sideways or upward.
RANK = {
    "errors": 0,
    "settings": 1,
    "io": 2,
    "music": 3,
    "corpus": 4,
    "model": 5,
    "generation": 6,
    "realtime": 6,
    "evaluation": 7,
    "render": 7,
    "training": 8,
    "monitor": 8,
    "session": 9,
    "cli": 10,
}
# What plays must not need torch: these rooms, and the numpy step model.
TORCH_FREE = ("realtime", "io", "session", "music", "corpus", "generation", "render", "monitor", "settings")
TORCH_FREE_MODULES = ("improv.model.step_model", "improv.model.sampling", "improv.model.weights", "improv.model.voices")


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports(path: Path) -> set[str]:
    """Every improv module a file imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "improv" else None


def test_rooms_import_only_from_rooms_below_them():
    known = modules()
    wrong = []
    for name, path in known.items():
        mine = room(name)
        if mine is None or mine not in RANK:
            continue
        for target in imports(path):
            theirs = room(target)
            if theirs is None or theirs == mine or theirs not in RANK:
                continue
            if RANK[theirs] >= RANK[mine]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_every_room_is_ranked():
    rooms = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert rooms <= set(RANK), rooms - set(RANK)


def test_the_live_path_never_imports_torch():
    offenders = []
    for name, path in modules().items():
        if room(name) in TORCH_FREE or name in TORCH_FREE_MODULES:
            if any(t == "torch" or t.startswith("torch.") for t in imports(path)):
                offenders.append(name)
    assert offenders == []


def test_no_module_over_400_lines():
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > 400}
    assert long == {}


def test_no_module_re_exports_names_it_moved():
    """No shims: an ``__all__`` of re-exports, or a package ``__init__`` importing its modules."""
    for name, path in modules().items():
        text = path.read_text()
        assert "__all__" not in text, name
        if path.name == "__init__.py":
            assert not re.search(r"^\s*(from|import) ", text, re.M), name


def test_pyproject_lists_every_package():
    listed = re.findall(r'^\s*"(improv[\w.]*)",$', (ROOT / "pyproject.toml").read_text(), re.M)
    folders = {name for name, path in modules().items() if path.name == "__init__.py"}
    assert set(listed) == folders | {"improv.checkpoints"}


def test_the_live_commands_run_with_torch_absent(tmp_path):
    """`improv generate`, `demo --fast` and `voices` in a process where torch cannot be imported
    (as after `pip install improv` without the train extra)."""
    script = (
        "import sys; sys.modules['torch'] = None  # import torch now raises ImportError\n"
        "from improv.cli.main import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    runs = [
        ["voices"],
        ["generate", "--out", str(tmp_path / "g.mid"), "--length", "20", "--seed", "1"],
        ["demo", "--fast", "--calls", "1", "--record", str(tmp_path / "d.mid"), "--set", f"corpus.cache_dir={tmp_path / 'cache'}"],
    ]
    for args in runs:
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr[-2000:])
    assert (tmp_path / "g.mid").exists() and (tmp_path / "d.mid").exists()
    trained = subprocess.run([sys.executable, "-c", script, "train", "--out", str(tmp_path / "m.pt")], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert trained.returncode == 2 and 'pip install -e ".[train]"' in trained.stderr and "Traceback" not in trained.stderr


@pytest.mark.slow
def test_a_wheel_installed_outside_the_clone_plays(tmp_path):
    """The wheel carries the shipped voices and the default config: installed in a fresh venv
    (its dependencies lent from this one), away from the checkout, `improv demo --fast` plays."""
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = wheels.glob("improv_midi-*.whl")  # the distribution's name: `improv` on PyPI is another package
    shipped = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("improv/checkpoints/")]
    # The playing weights only: the .pt training checkpoints (24.5 MB of a 43.6 MB wheel) stay in the clone.
    assert not [n for n in shipped if n.endswith(".pt")], shipped
    assert {f"improv/checkpoints/{v}.npz" for v in ("base", "bach", "folk", "renaissance")} <= set(shipped), shipped
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True, check=True).stdout.strip())
    # The dependencies of this environment, lent by path (not its editable improv: the .pth files
    # of a folder added this way are not run).
    deps = [p for p in sys.path if p.endswith("site-packages")]
    (site / "lent.pth").write_text("\n".join(deps) + "\n")
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    away = tmp_path / "elsewhere"
    away.mkdir()
    where = subprocess.run([str(python), "-c", "import improv; print(improv.__file__)"], capture_output=True, text=True, cwd=away, check=True).stdout
    assert where.startswith(str(site)), where  # the wheel's improv, not the checkout's
    for args in (["voices"], ["config"], ["demo", "--fast", "--calls", "1", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"]):
        done = subprocess.run([str(venv / "bin" / "improv"), *args], capture_output=True, text=True, cwd=away, timeout=300)
        assert done.returncode == 0, (args, done.stdout[-1000:], done.stderr[-2000:])
    assert (away / "demo.mid").exists()
    if importlib.util.find_spec("torch") is not None:  # fine-tuning starts from the shipped .npz
        data = away / "mine"
        data.mkdir()
        notes = [Note(60 + (k * 5) % 12, 0.5 * k, 0.5, 80) for k in range(24)]
        for i in range(4):
            (data / f"m{i}.mid").write_bytes(midi_bytes([Track("x", notes[i:])], 100))
        sets = ["--set", "train.batch_size=2", "--set", "train.chunk_len=16", "--set", "train.threads=1", "--set", f"corpus.cache_dir={tmp_path / 'cache'}"]
        done = subprocess.run([str(venv / "bin" / "improv"), "train", "--from", "base", "--data", str(data), "--max-steps", "2", "--out", "ft.pt", "--json", *sets], capture_output=True, text=True, cwd=away, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        origin = subprocess.run([str(python), "-c", "from improv.model.checkpoint import load_checkpoint; print(load_checkpoint('ft.pt').train['from']['path'])"], capture_output=True, text=True, cwd=away, check=True).stdout
        assert origin.strip() == str(site / "improv" / "checkpoints" / "base.npz"), origin


def test_the_package_version_is_pyprojects():
    import improv

    assert f'version = "{improv.__version__}"' in (ROOT / "pyproject.toml").read_text()


def test_commands_that_need_torch_say_how_to_get_it_without_it(tmp_path):
    """Without torch, eval and train end in one line with the install hint (eval was a traceback;
    the hint named `improv[train]`, which on PyPI is another package)."""
    script = "import sys; sys.modules['torch'] = None; from improv.cli.main import main; sys.exit(main(sys.argv[1:]))"
    for args in (["eval", "--voice", "bach"], ["train", "--data", "music21:bach/bwv66.6", "--out", str(tmp_path / "m.pt")]):
        done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, (args, done.stderr[-1500:])
        assert "needs torch, which is not installed" in lines[0] and 'pip install -e ".[train]"' in lines[0] and "improv[train]" not in lines[0], lines
