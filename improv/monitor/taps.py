"""Taps on the serve loop, from outside it: the loop runs unchanged, with its input, output and
status callback wrapped.

* ``TappedInput`` passes the performer's messages through (posting their notes), then hands the
  engine the page's control messages (``Feed.send``) as if a controller had sent them, and, at
  most every ``snapshot_s``, posts what improv hears and does now (``snapshot``): a few attribute
  reads on the loop's own thread, so nothing is shared with the web threads but the deques.
* ``TappedOutput`` sends first, then posts improv's notes: the send's timing is untouched.
* ``tapped_status`` posts each status line after the session has said it (on the loop's printer
  thread), and has the state posted at the loop's next turn.

Each post is one ``deque.append`` of a small dict: microseconds, no lock, no I/O.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from improv.monitor.feed import Feed


def snapshot(engine: Any, now: float, voice_label: str = "") -> dict[str, Any]:
    """What improv hears and does: tempo (and where it comes from), key, voice, the knobs, and the
    answer's state: listening, preparing (a call is being answered in the silence) or answering."""
    answer = engine.answer
    if engine.mode == "responding":
        doing = "answering"
    elif answer is not None and answer.playback is None:
        doing = "preparing"
    elif engine.band_playing:  # play along: accompanying, looping or soloing (serve.mode)
        doing = {"accompany": "accompanying", "loop": "looping", "solo": "soloing"}.get(engine.play_mode, "listening")
    else:
        doing = "listening"
    voice = engine.voices[engine.voice].name or voice_label
    return {
        "type": "state",
        "t": now,
        "doing": doing,
        "bpm": round(float(engine.bpm), 1),
        "tempo_source": engine.tempo_source,
        "link": engine.link.describe(now) if getattr(engine, "link", None) is not None else None,  # serve --link: peers, tempo, role
        "key": answer.reading.key if answer is not None else None,
        "voice": voice,
        "voice_index": engine.voice,
        "temperature": round(float(engine.temperature), 3),
        "length": round(float(engine.length_factor), 3),
        "imitation": round(float(engine.imitation), 3),
        "density": round(float(engine.density), 3),
        **memory_state(engine),
        "mode": engine.play_mode,
        "mutate": round(float(engine.mutate), 3),
    }


def memory_state(engine: Any) -> dict[str, Any]:
    """The session memory: its knob, and how much it has learned (events)."""
    memory = getattr(engine, "memory", None)
    return {"adapt": round(float(memory.adapt), 3), "remembered": memory.events} if memory is not None else {}


class TappedInput:
    def __init__(self, inner: Any, feed: Feed, engine: Any, clock: Any, voice_label: str = "", snapshot_s: float = 0.05) -> None:
        self.inner = inner
        self.feed = feed
        self.engine = engine
        self.clock = clock
        self.voice_label = voice_label
        self.snapshot_s = snapshot_s
        self._next_snapshot = -1.0
        self._last: dict[str, Any] = {}
        self._key: str | None = None
        self._stamped = getattr(inner, "iter_stamped", None)

    def next_arrival(self) -> float | None:
        ask = getattr(self.inner, "next_arrival", None)
        return ask() if ask is not None else None

    @property
    def dropped(self) -> int:
        return getattr(self.inner, "dropped", 0)

    def iter_stamped(self) -> Iterator[tuple[float, Any]]:
        arrivals = self._stamped() if self._stamped is not None else ((self.clock.now(), m) for m in self.inner.iter_pending())
        post = self.feed.post
        for t, msg in arrivals:
            if msg.type == "note_on" or msg.type == "note_off":
                post({"type": "note", "who": "performer", "channel": msg.channel, "pitch": msg.note, "velocity": msg.velocity if msg.type == "note_on" else 0, "t": t})
            yield t, msg
        if self.feed.inbox:
            now = self.clock.now()
            for msg in self.feed.take_inbox():
                yield now, msg
        now = self.clock.now()
        if now >= self._next_snapshot:
            self.post_state(now)

    def state_changed(self) -> None:
        """Post the state at the loop's next turn (any thread)."""
        self._next_snapshot = -1.0

    def post_state(self, now: float) -> None:
        """Post the engine's state when it changed (or once a second, so a page knows it is live)."""
        self._next_snapshot = now + self.snapshot_s
        state = snapshot(self.engine, now, self.voice_label)
        if state["key"] is None:
            state["key"] = self._key  # between answers: the last key heard
        self._key = state["key"]
        same = all(state[k] == self._last.get(k) for k in state if k != "t")
        if not same or now - self._last.get("t", -1e9) >= 1.0:
            self._last = state
            self.feed.post(state)


class TappedOutput:
    def __init__(self, inner: Any, feed: Feed, clock: Any) -> None:
        self.inner = inner
        self.feed = feed
        self.clock = clock

    def send(self, msg: Any) -> None:
        self.inner.send(msg)  # first: the send leaves on time, the post comes after
        if msg.type == "note_on" or msg.type == "note_off":
            velocity = msg.velocity if msg.type == "note_on" else 0
            self.feed.post({"type": "note", "who": "improv", "channel": msg.channel, "pitch": msg.note, "velocity": velocity, "t": self.clock.now()})


def tapped_status(say: Callable[[str], None], feed: Feed, clock: Any, input_tap: TappedInput | None = None) -> Callable[[str], None]:
    """``say``, then the line posted (and the state, which an exchange's end has just changed)."""

    def status(line: str) -> None:
        # The loop's printer thread calls this (``session.printer``): the engine is read on the
        # loop's own thread only, so the new state is posted at the loop's next turn.
        say(line)
        feed.post({"type": "status", "line": line, "t": clock.now()})
        if input_tap is not None:
            input_tap.state_changed()

    return status
