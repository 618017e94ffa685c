"""The live page's play-along controls in a headless Chromium: the mode menu switches improv's mode,
the mutate slider moves its knob, a learn button makes the next controller message bind to its
control. Skipped where Chromium is not installed."""

from __future__ import annotations


import pytest
from support.browser import wait_until
from support.live_session import LiveSession


@pytest.mark.slow
def test_mode_mutate_and_learn_from_the_page(browser, tmp_path):
    with LiveSession(calls=1, gap_s=2.0, lead_s=1.0) as live:
        browser.navigate(live.monitor.url)
        browser.wait_for("document.getElementById('link').textContent === 'live'")
        browser.wait_for("!document.getElementById('mode-select').disabled")
        browser.evaluate("(() => { const m = document.getElementById('mode-select'); m.value = 'loop'; m.dispatchEvent(new Event('change')); })()")
        wait_until(lambda: live.engine.play_mode == "loop")
        browser.wait_for("document.getElementById('mode-select').value === 'loop'")
        browser.evaluate("(() => { const t = document.getElementById('mutate'); t.value = 0.5; t.dispatchEvent(new Event('change')); })()")
        wait_until(lambda: abs(live.engine.mutate - 0.5) < 0.01)
        browser.wait_for("document.getElementById('mutate-out').textContent === '0.50'")
        browser.evaluate("document.getElementById('learn-mutate').click()")
        wait_until(lambda: live.engine._controls.learning == "mutate")
        browser.screenshot(str(tmp_path / "page.png"))
        assert browser.evaluate("window.improvMonitor.problems") == 0
