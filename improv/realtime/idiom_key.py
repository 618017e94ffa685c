"""The key the answer's key rule keeps, taken from what the performer has been playing.

The key rule (``realtime.processors.key``) keeps an answer to the call's key: the scale of the
key estimated from the call, plus the pitch classes the call played. A major or minor scale is the
wrong key for a whole-tone or a blues session: C major's F, G, A and B are out of C's whole-tone
scale, and the rule kept them in while the session memory pulled the other way (over JACK, with
the default rules, the memory added about +0.1 of whole-tone notes). So, as the memory gains its
say (``SessionMemory.share``: adapt, evidence, variety), the key moves to the performer's:

* a pitch class the performer keeps playing (its ``strength``, from the last ``RECENT`` events)
  joins the key once ``share * strength >= JOIN_AT``;
* a pitch class of the estimated scale the performer does not play leaves it once
  ``share * heard * (1 - strength) >= LEAVE_AT`` (``heard``: how much of ``RECENT`` events the
  memory holds): from about adapt 0.5 on, after some three calls.
The call's own pitch classes always stay in. Recent events, not the whole set: a performer who
moves to another key (a new piece) brings the key with them within a few calls; and the share
counts only as much as the call fits the recent scale (``realtime.call_fit.agreement``), so the
first call in the new key is answered in it, not in the key just left.
"""

from __future__ import annotations

import numpy as np

from improv.realtime.call_fit import RECENT, agreement, scale_strength
from improv.realtime.memory import SessionMemory

JOIN_AT = 0.25  # share x strength from which a played pitch class joins the key
LEAVE_AT = 0.45  # share x heard x (1 - strength) from which an unplayed scale tone leaves it


def performer_key(allowed: np.ndarray, call_pcs: np.ndarray, memory: SessionMemory, now: float) -> np.ndarray:
    """``allowed`` (12 bools: the estimated key's scale) moved toward the performer's scale by the
    memory's share now; the call's pitch classes (``call_pcs``) stay in."""
    share = memory.share(now)
    strength = scale_strength(memory) if share > 0 else None
    if strength is None:
        return allowed
    share *= agreement(strength, call_pcs)  # a key the performer has left has no say (realtime.call_fit)
    heard = min(memory.events / RECENT, 1.0)  # a few notes are no scale yet: nothing leaves on two licks' say
    out = allowed & ~(share * heard * (1.0 - strength) >= LEAVE_AT)
    out |= share * strength >= JOIN_AT
    out[np.asarray(call_pcs, dtype=int) % 12] = True
    return out
