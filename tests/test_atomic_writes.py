"""What a kill leaves behind (issue 14, item 7): a writer killed outright (SIGKILL) mid-write leaves
its temporary file; the next checkpoint, weights file or loss plot written there removes it, and
never the temporary file of a writer still at work (it holds a lock while it writes)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from improv.io.files import remove_stale_temporaries, write_atomic

WRITER = """
import sys, time
from improv.io.files import write_atomic
def slow(handle):
    handle.write(b"half a checkpoint")
    handle.flush()
    print("writing", flush=True)
    time.sleep(600)
write_atomic(sys.argv[1], slow)
"""


def writer(target: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    return proc


def temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_a_killed_writers_temporary_file_is_removed_and_a_live_ones_kept(tmp_path):
    target = tmp_path / "m.pt"
    killed = writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait(10)
    (stale,) = temporaries(tmp_path)
    live = writer(target)
    try:
        assert len(temporaries(tmp_path)) == 2
        write_atomic(target, b"the new checkpoint", clean=True)
        assert target.read_bytes() == b"the new checkpoint"
        left = temporaries(tmp_path)
        assert stale not in left and len(left) == 1  # the live writer's is still there
    finally:
        live.kill()
        live.wait(10)
    time.sleep(0.1)
    assert remove_stale_temporaries(target) == left
    assert temporaries(tmp_path) == []


def test_without_clean_nothing_else_is_touched(tmp_path):
    target = tmp_path / "entry.corpus"
    (tmp_path / f".{target.name}.abc.tmp").write_bytes(b"x")
    (tmp_path / ".other.pt.abc.tmp").write_bytes(b"y")
    write_atomic(target, b"data")
    assert temporaries(tmp_path) == [".entry.corpus.abc.tmp", ".other.pt.abc.tmp"]
    write_atomic(target, b"data", clean=True)
    assert temporaries(tmp_path) == [".other.pt.abc.tmp"]  # another file's, never ours to remove
