"""The web page in headless Chromium: type the key, pick a photo, press Identify, see the
candidates (and, in combo mode, the boxes) rendered. Needs Debian's ``chromium``."""

from __future__ import annotations

from pathlib import Path

import pytest
from cdp import CHROMIUM, Browser

from api_helpers import KEY, Photos, ServerProcess

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                 "(Debian package chromium)")]


def test_upload_on_the_page_renders_the_result(api_server: ServerProcess, pill_photos: Photos,
                                               tmp_path: Path) -> None:
    with Browser(tmp_path / "profile") as page:
        page.open(api_server.url + "/")
        assert page.evaluate("document.getElementById('identify').disabled")
        page.type_into("#api-key", KEY)
        page.choose_file("#pick", pill_photos["single"])
        page.wait_for("!document.getElementById('identify').disabled")
        page.click("#identify")
        page.wait_for("document.getElementById('results').dataset.state === 'done'")
        rows = page.evaluate("[...document.querySelectorAll('#pills tr.candidate')]"
                             ".map(r => [...r.cells].map(c => c.textContent))")
        assert rows and all(r[1].startswith("K-") and r[-1].endswith("%") for r in rows)
        assert page.evaluate("document.querySelector('#pills strong').textContent")
        assert page.evaluate("document.getElementById('view').width") > 0
        status = page.evaluate("document.getElementById('status').textContent")
        assert "single pipeline" in status
        # the key stays in page memory unless the user asks to remember it
        assert page.evaluate("window.localStorage.getItem('pillsnap.apiKey')") is None
        page.screenshot(tmp_path / "single.png")

        page.click("input[name=pipeline][value=combo]")
        page.click("#remember-key")
        page.click("#identify")
        page.wait_for("document.getElementById('results').dataset.state === 'done'")
        status = page.evaluate("document.getElementById('status').textContent")
        boxes = page.evaluate("document.querySelectorAll('#pills > li').length")
        assert "combo pipeline" in status or (boxes == 0 and "No pill" in status)
        assert page.evaluate("window.localStorage.getItem('pillsnap.apiKey')") == KEY

        page.evaluate("document.getElementById('api-key').value = 'wrong-key-0123456789'")
        page.click("#identify")
        page.wait_for("document.getElementById('results').dataset.state === 'error'")
        assert "403" in page.evaluate("document.getElementById('status').textContent")
