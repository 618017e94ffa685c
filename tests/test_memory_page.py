"""The session memory's controls on the live page, in a real headless browser: the adapt slider
and the forget button change improv as CC 28 and CC 29 do, and the page shows what it has learned.
Skipped where Chromium is not installed."""

from __future__ import annotations


import pytest
from support.browser import wait_until
from support.live_session import LiveSession


@pytest.mark.slow
def test_the_adapt_slider_and_the_forget_button(browser):
    with LiveSession(calls=2, gap_s=4.0, lead_s=1.0) as live:
        browser.navigate(live.monitor.url)
        browser.wait_for("document.getElementById('link').textContent === 'live'")
        wait_until(lambda: live.engine.memory.events >= 4, timeout=30)  # the first call, learned
        browser.wait_for("document.getElementById('adapt-out').textContent.includes('notes learned')", timeout=20)
        browser.evaluate("(() => { const a = document.getElementById('adapt'); a.value = 1; a.dispatchEvent(new Event('change')); })()")
        wait_until(lambda: live.engine.memory.adapt == 1.0)
        browser.wait_for("document.getElementById('adapt-out').textContent.startsWith('1.00')")
        browser.evaluate("document.getElementById('forget').click()")
        wait_until(lambda: live.engine.memory.events == 0)
        assert browser.evaluate("window.improvMonitor.problems") == 0
