"""A flood of the live page's ``/events`` from another process, for the monitor's test and the stage
benchmark: ``python -c FLOOD URL``; 32 threads request the stream over and over, each reading one
line; it prints ``ready``, and when its stdin closes, how many requests were served and refused."""

FLOOD = """
import sys, threading, urllib.request, urllib.error
url, stop = sys.argv[1], threading.Event()
counts = {"served": 0, "refused": 0}
def hammer():
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                r.readline(); counts["served"] += 1
        except (urllib.error.HTTPError, OSError):
            counts["refused"] += 1
threads = [threading.Thread(target=hammer, daemon=True) for _ in range(32)]
for t in threads: t.start()
print("ready", flush=True)
sys.stdin.read()
stop.set()
print(counts["served"], counts["refused"], flush=True)
"""
