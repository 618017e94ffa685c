"""The live page in a real headless browser (Chromium, driven through the DevTools protocol): it
loads, shows the notes of a scripted performer and of improv's answer as they are played, and a
control clicked on the page changes what improv does. Skipped where Chromium is not installed.

Every wait polls for its condition with a generous limit: a loaded CI machine is slow, and
nothing here measures time."""

from __future__ import annotations

import math

import pytest
from support.browser import wait_until
from support.live_session import LiveSession


def count(browser, who: str) -> int:
    return int(browser.evaluate(f"Number(document.getElementById('{who}-count').textContent)"))


@pytest.mark.slow
def test_the_page_shows_the_session_and_its_controls_change_improv(browser):
    with LiveSession(calls=3, gap_s=4.0, lead_s=2.0) as live:
        browser.navigate(live.monitor.url)
        browser.wait_for("document.getElementById('link').textContent === 'live'")
        # The performer's notes appear as they are played, then improv's answer.
        browser.wait_for("Number(document.getElementById('performer-count').textContent) >= 4", timeout=20)
        browser.wait_for("Number(document.getElementById('improv-count').textContent) >= 1", timeout=20)
        assert browser.wait_for("document.querySelector('#lines li.exchange')?.textContent || ''", timeout=20).startswith("#1 call 4 notes")
        assert browser.evaluate("document.getElementById('tempo').textContent") == "100 bpm"
        assert browser.evaluate("document.getElementById('voice').textContent") == "ladder"
        assert browser.evaluate("document.getElementById('doing-text').textContent") in ("listening", "preparing", "answering")
        # Notes are drawn on the roll: some of its pixels have the parts' colours.
        drawn = browser.evaluate(
            """(() => { const c = document.getElementById('roll'), d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 120 && d[i + 2] < 90) n++; return n; })()"""
        )
        assert drawn > 50  # improv's orange
        # The temperature slider, moved and let go as a hand would: the engine takes it.
        assert live.engine.temperature == 1.0
        browser.evaluate(f"(() => {{ const t = document.getElementById('temperature'); t.value = {math.log(0.5)}; t.dispatchEvent(new Event('change')); }})()")
        wait_until(lambda: abs(live.engine.temperature - 0.5) < 0.02)
        browser.wait_for("document.getElementById('temperature-now').textContent === '0.50'")
        # PANIC, clicked: every note off, on every channel.
        before = len(live.sent())
        browser.evaluate("document.getElementById('panic').click()")
        wait_until(lambda: sum(m.type == "control_change" and m.control == 123 for _, m in live.sent()[before:]) == 16)
        assert browser.evaluate("window.improvMonitor.problems") == 0
    browser.wait_for("document.getElementById('link').textContent === 'the session has ended'")
