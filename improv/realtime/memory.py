"""Session memory: the performer's own language, learned while they play, mixed into the voice.

A cache model, as in language modelling (Kuhn & De Mori 1990) and the Continuator (Pachet 2003):
variable-order n-gram tables over the events the performer played this session, and an answer's
heads drawn from ``p = (1 - lam) * p_voice + lam * p_memory``. Why not online training of the
heads: this learns from one phrase, costs microseconds per event, and forgets exactly (a phrase's
counts come out again). ``benchmarks/bench_learn.py`` measures what it buys. Counted per event
(each table interpolated over its orders, Witten-Bell): the offset class after the last 1-3
offsets (rhythm); the melodic interval (-24..24, transposition-aware) after the last 1-2 and
whether the note joins a chord; the pitch class after the last one (the scale: whole-tone stays
whole-tone); the duration class given the offset and the last duration; the velocity class after
the last one; the pitches played (the register); the duration of each phrase's last note (how the
performer ends a phrase: an answer near its end leans to it, ``ENDING_SHARE``). The pitch head's
memory is the product of the interval and pitch-class tables within the register's window, the
repeat of the last key the interval table's alone (both know it; the product counted it twice),
and the pitch classes the call's own as far as the call leaves the recent scale
(``realtime.call_fit``: a key the performer has left does not leak into the next answer); the key
rule's key follows the recent pitch classes too (``realtime.idiom_key``).

Safe by construction: a key struck again and again counts ``RUN_KEEP`` times, not 500; the weight
``lam`` grows with the evidence (events, faded by time) and with its variety (a session of one
pitch class is no idiom and gets no say; the full say from a perplexity of ``VARIETY_FULL`` pitch
classes on), and never passes ``LAMBDA_MAX``: the voice keeps its share. Bounded: the last
``MAX_EVENTS`` events, each one's counts taken out when it leaves, and at most ``MAX_CONTEXTS``
contexts. Kept between sets by ``realtime.memory_file``. Pure: time comes in as arguments;
learning is queued (``hear``) and done a unit at a time in the engine's think slices
(``absorb``), never on a send; one answer reads the memory as it was prepared (``catch_up``
first, nothing learned while it is sampled), so how the slices fell never changes its notes.
The voice's own notes outside the performer's scale lose weight with the memory's say
(``realtime.memory_cursor``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Sequence

import numpy as np

from improv.music.tokenizer import BOS, DURATION, N_PITCH, OFFSET, PITCH, VELOCITY, Tokenizer
from improv.realtime.call_fit import agreement, call_pitch_classes, scale_strength
from improv.realtime.memory_cursor import MemoryCursor
from improv.realtime.memory_events import MAX_INTERVAL, TABLES, Feat, contexts, symbol

MAX_EVENTS = 1000  # events remembered (some 100 calls); older ones leave, their counts with them
MAX_CONTEXTS = 1200  # n-gram contexts counted, at most (junk makes new ones at every note): ~0.7 MB
RUN_KEEP = 3  # of a run of one key struck again and again, only this many are learned
EVIDENCE_HALF = 12.0  # events of evidence at which the share is half of its most
VARIETY_FULL = 4.0  # pitch classes (perplexity of the session's pitch classes) for the full share
FADE_TO = 0.1  # with forget_after, a phrase that old counts this much
# Near an answer's end, the memory's durations are this much the lengths the performer's phrases
# end with: whole-tone and blues licks end on a half note (a third of a lick's weight, duration x
# velocity), the answers at adapt 0 on 0.7-1.0 beats, so their pitch-class histograms were
# flatter than any lick's.
ENDING_SHARE = 0.5

REGISTER_SPREAD = 3.0  # semitones: past the performer's lowest / highest note, the memory's pitches fade with this width
REGISTER_FLOOR = 0.01  # ... to this (the voice's own share still reaches any key in range)


class SessionMemory:
    """What the performer played this session, as n-gram counts; see the module docstring."""

    def __init__(self, tokenizer: Tokenizer, adapt: float = 0.0, forget_after: float = 0.0, max_events: int = MAX_EVENTS) -> None:
        self.tokenizer = tokenizer
        self.adapt = adapt
        self.forget_after = forget_after
        self.max_events = max_events
        self._sizes = {"offset": tokenizer.sizes[OFFSET], "interval": 2 * MAX_INTERVAL + 1, "pc": 12, "register": 128, "duration": tokenizer.sizes[DURATION], "velocity": tokenizer.sizes[VELOCITY], "ending": tokenizer.sizes[DURATION]}
        self.pending: deque[tuple[np.ndarray, float, bool]] = deque(maxlen=max_events)  # heard, not learned yet (bounded too); True: a phrase's last note
        self.forget()

    # ---- learning -------------------------------------------------------------------------------

    def control(self, kind: str, value: float) -> None:
        """The performer's knob (``adapt``, 0..1) or switch (``forget``)."""
        if kind == "forget":
            self.forget()
        self.adapt = value if kind == "adapt" else self.adapt

    def forget(self) -> None:
        """Everything learned goes (the forget control)."""
        self._counts: dict[str, dict[tuple, np.ndarray]] = {t: {} for t in TABLES}
        self._seen: dict[tuple, np.ndarray | None] = {}  # distributions worked out since the last change
        self._contexts = 0  # entries of every table
        self._events: deque[tuple[np.ndarray, float, list[tuple[str, tuple, int]]]] = deque()
        self._history: list[Feat] = []  # the last learned events, for the next one's contexts
        self._run = 0  # how many times the last key came in a row
        self._t0: float | None = None  # weights are stored relative to this time (see _weight); set by the first use
        self.total = 0.0  # stored weight of every remembered event
        self.pending.clear()

    def hear(self, rows: Sequence[np.ndarray], now: float) -> None:
        """The performer's call (its notes' rows as the model heard them): learned later, in ``absorb``."""
        notes = [row for row in rows if int(row[PITCH]) < BOS]
        for k, row in enumerate(notes):
            self.pending.append((np.array(row, dtype=np.uint8), now, k == len(notes) - 1))

    def absorb(self, now: float = 0.0) -> int:
        """Learn one heard event (a think unit; ``now`` unused: each event keeps its time)."""
        if not self.pending:
            return 0
        row, t, last = self.pending.popleft()
        self.learn(row, t, last=last)
        return 1

    def catch_up(self) -> int:
        """Learn everything heard (an answer is being prepared: it reads the memory as the calls
        before it left it, however the think slices fell)."""
        done = 0
        while self.pending:
            done += self.absorb()
        return done

    def learn(self, row: Sequence[int], now: float = 0.0, weight: float | None = None, last: bool = False) -> None:
        """One performer event, now (or counting ``weight``, as a loaded one does); ``last``: it
        ended the phrase."""
        before = self._history[-1] if self._history else None
        f = Feat(row, before, last)
        self._run = self._run + 1 if before is not None and f.pitch == before.pitch else 1
        if self._run > RUN_KEEP:  # hammering one key: not more of the same
            return
        w = self._weight(now) if weight is None else weight
        keys = []
        for table in TABLES:
            sym = symbol(table, f)
            if sym is None:
                continue
            for ctx in contexts(table, self._history, f):
                counts = self._counts[table].get(ctx)
                if counts is None:
                    if ctx and self._contexts >= MAX_CONTEXTS:
                        continue  # full: what is known still counts, no new longer context
                    counts = self._counts[table][ctx] = np.zeros(self._sizes[table])
                    self._contexts += 1
                counts[sym] += w
                keys.append((table, ctx, sym))
        self._events.append((np.array(row, dtype=np.uint8), w, keys))
        self._seen.clear()
        self.total += w
        self._history = (self._history + [f])[-3:]
        while len(self._events) > self.max_events:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, w, keys = self._events.popleft()
        self.total -= w
        for table, ctx, sym in keys:
            counts = self._counts[table].get(ctx)
            if counts is None:  # faded to nothing and gone already
                continue
            counts[sym] -= w
            if counts.sum() <= 1e-9 * max(self.total, 1.0):
                del self._counts[table][ctx]
                self._contexts -= 1

    def _rate(self) -> float:
        """Growth of a new event's stored weight per second (0: nothing fades)."""
        return math.log(1 / FADE_TO) / self.forget_after if self.forget_after > 0 else 0.0

    def _weight(self, now: float) -> float:
        """A new event's stored weight: exp(rate * (now - t0)), so that stored weights scaled by
        ``scale(now)`` fade every event alike; rebased before it grows large."""
        rate = self._rate()
        if self._t0 is None:
            self._t0 = now
        if rate * (now - self._t0) > 30:
            shrink = math.exp(-rate * (now - self._t0))
            for table in self._counts.values():
                for counts in table.values():
                    counts *= shrink
            self._events = deque((r, w * shrink, k) for r, w, k in self._events)
            self.total *= shrink
            self._t0 = now
        return math.exp(rate * (now - self._t0))

    def scale(self, now: float) -> float:
        """What a stored weight counts at ``now`` (1 when nothing fades)."""
        if self._t0 is None:
            self._t0 = now
        return math.exp(-self._rate() * (now - self._t0))

    # ---- how much it counts ------------------------------------------------------------------------

    events = property(lambda self: len(self._events))  # remembered now
    remembered = property(lambda self: self._events)  # (row, stored weight, counts) of each, oldest first: read only

    def variety(self) -> float:
        """Perplexity of the session's pitch classes: 1 for one key hammered, ~6 for a whole-tone line."""
        counts = self._counts["pc"].get(())
        if counts is None or counts.sum() <= 0:
            return 0.0
        p = counts[counts > 0] / counts.sum()
        return float(np.exp(-(p * np.log(p)).sum()))

    def share(self, now: float, adapt: float | None = None) -> float:
        """How much the memory has its say now, 0..1 (0 = the voice alone): each head's share is
        this times its ``LAMBDA_MAX``."""
        adapt = self.adapt if adapt is None else adapt
        evidence = self.total * self.scale(now)
        if adapt <= 0 or evidence <= 0:
            return 0.0
        varied = min(max((self.variety() - 1) / (VARIETY_FULL - 1), 0.0), 1.0)
        return adapt * varied * evidence / (evidence + EVIDENCE_HALF)

    # ---- predicting -------------------------------------------------------------------------------

    def _dist(self, table: str, contexts: list[tuple], scale: float) -> np.ndarray | None:
        """Witten-Bell interpolation from the lowest order up; None when nothing was counted."""
        key = (table, contexts[-1], len(contexts), scale)
        if key not in self._seen:
            if len(self._seen) > 4096:  # bounded between two phrases, too
                self._seen.clear()
            self._seen[key] = self._interpolate(table, contexts, scale)
        return self._seen[key]

    def _interpolate(self, table: str, contexts: list[tuple], scale: float) -> np.ndarray | None:
        table_counts = self._counts[table]
        p = None
        for ctx in contexts:
            counts = table_counts.get(ctx)
            if counts is None:
                break  # a longer context is never seen when this one was not
            c = counts * scale
            total = c.sum()
            if total <= 1e-12:
                break
            if p is None:
                p = c / total
                continue
            types = float(np.count_nonzero(c > 1e-12 * total))
            p = (c + types * p) / (total + types)
        return p

    def probs(self, field: int, history: Sequence[Feat], row: np.ndarray, scale: float, call_pc: np.ndarray | None = None, agree: float = 1.0, closing: bool = False) -> np.ndarray | None:
        """The memory's distribution over ``field``'s classes for the next event, given the
        events before (``history``) and the fields of ``row`` drawn already; None: no opinion.
        ``call_pc`` / ``agree``: the answered call's pitch classes, and how far the memory's are
        still the performer's (``realtime.call_fit``). ``closing``: the answer looks for its
        ending (the cadence rule's part of it): its durations lean to the lengths the performer
        ends phrases with (``ENDING_SHARE``)."""
        if field == OFFSET:
            return self._dist("offset", contexts("offset", history, None), scale)
        if field == PITCH:
            return self._pitch(history, int(row[OFFSET]), scale, call_pc, agree)
        now = Feat(row, history[-1] if history else None)
        if field == DURATION:
            p = self._dist("duration", contexts("duration", history, now), scale)
            end = self._dist("ending", [()], scale) if closing else None
            if p is not None and end is not None:
                p = (1 - ENDING_SHARE) * p + ENDING_SHARE * end
            if p is not None:
                p = p.copy()
                p[0] = 0.0  # a note never has duration class 0
                p = p / p.sum() if p.sum() > 0 else None
            return p
        return self._dist("velocity", contexts("velocity", history, now), scale)

    def _pitch(self, history: Sequence[Feat], offset: int, scale: float, call_pc: np.ndarray | None = None, agree: float = 1.0) -> np.ndarray | None:
        before = history[-1] if history else None
        probe = Feat((before.pitch if before else 60, offset, 1, 0), before)
        pc = self._dist("pc", contexts("pc", history, probe), scale)
        if pc is None:
            return None
        if call_pc is not None and agree < 1.0:  # a key the performer has left: the call's own pitch classes instead
            pc = agree * pc + (1.0 - agree) * call_pc
        pitch = np.tile(0.95 * pc + 0.05 / 12, 11)[:128]  # floored: the product never rules a key out
        if before is not None and before.pitch < 128:
            step = self._dist("interval", contexts("interval", history, probe), scale)
            if step is not None:
                near = np.full(128, 0.02 / 128)  # leaps beyond the counted range keep a little
                lo, hi = max(before.pitch - MAX_INTERVAL, 0), min(before.pitch + MAX_INTERVAL, 127)
                near[lo : hi + 1] += 0.98 * step[lo - before.pitch + MAX_INTERVAL : hi - before.pitch + MAX_INTERVAL + 1]
                pitch = pitch * near
                # The same key again is the interval table's to say (its 0, after the last
                # intervals): the pitch class after the last one says it too, and the product
                # counted the repeat twice (Final Fantasy's answers repeated a key on 0.64 of their
                # steps against the performer's 0.36). The product shares out the rest.
                again = near[before.pitch]
                rest = pitch.sum() - pitch[before.pitch]
                if rest > 0 and again < 1:
                    pitch = pitch * ((1 - again) / rest)
                    pitch[before.pitch] = again
        pitch = pitch * self._register()
        out = np.zeros(N_PITCH)
        out[:128] = pitch / pitch.sum()
        return out

    def _register(self) -> np.ndarray:
        """1 between the lowest and highest note the performer has played (of what is remembered),
        fading past them: the interval table is blind to register, and alone it walked answers out
        of the performer's range (held answers at adapt 1: 0.085 to 0.125 of their notes beyond it,
        some an octave beyond, against 0.01 at adapt 0). A fade scales every count alike: the
        window stays."""
        window = self._seen.get(("register",))
        if window is None:
            counts = self._counts["register"].get(())
            window = np.ones(128)
            if counts is not None and counts.sum() > 0:
                played, keys = np.flatnonzero(counts > 1e-9 * counts.sum()), np.arange(128)
                beyond = np.maximum(played[0] - keys, 0) + np.maximum(keys - played[-1], 0)
                window = np.exp(-0.5 * (beyond / REGISTER_SPREAD) ** 2) + REGISTER_FLOOR
            self._seen[("register",)] = window
        return window

    # ---- an answer's view ---------------------------------------------------------------------------

    def cursor(self, call_rows: Sequence[np.ndarray], now: float) -> "MemoryCursor | None":
        """The memory as one answer uses it (its share fixed when prepared), after the call's
        last notes; None when it has no say (adapt 0, nothing learned yet)."""
        lam = self.share(now)
        if lam <= 0:
            return None
        notes = [r for r in call_rows if int(r[PITCH]) < BOS]
        pitches = [int(r[PITCH]) for r in notes]
        strength = scale_strength(self)
        agree = agreement(strength, pitches)
        outside = None
        if strength is not None:  # pitch classes the performer has not been playing, the call's own kept
            outside = strength <= 0
            outside[np.asarray(pitches, dtype=int) % 12] = False
        return MemoryCursor(self, lam, self.scale(now), notes[-3:], call_pitch_classes(pitches), agree, outside)
