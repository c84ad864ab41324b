"""The web page in headless Chromium: type the key, pick a photo, press Identify, see the
candidates (and, in combo mode, the boxes) rendered. Needs Debian's ``chromium``."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
        # the test drugs are one family of look-alikes told apart by imprint, and the tiny
        # model is unsure among them: the page says what to check
        twins = page.evaluate("[...document.querySelectorAll('#pills .note.twin')]"
                              ".map(n => n.textContent)")
        assert twins and all(t.startswith("Looks like ") and "check imprint (front): '" in t
                             for t in twins)
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


def test_an_unknown_drug_is_shown_as_unknown_not_named(
        exported: Path, pill_photos: Photos, api_launcher: Callable[..., Any],
        tmp_path: Path) -> None:
    """An export whose open-set threshold no crop reaches: every pill is a drug the model
    does not know, and the page must say so instead of printing a drug's name."""
    from dataclasses import replace

    from pillsnap.export.metadata import write_recipe
    from pillsnap.infer.bundle import read_recipe

    export = tmp_path / "export"
    shutil.copytree(exported, export)
    recipe = read_recipe(export)
    assert recipe.open_set is not None
    write_recipe(export, recipe.replace(open_set=replace(recipe.open_set, threshold=1e30)))
    with api_launcher(tmp_path, "--model-path", str(export)) as server, \
            Browser(tmp_path / "profile") as page:
        page.open(server.url + "/")
        page.type_into("#api-key", KEY)
        page.choose_file("#pick", pill_photos["single"])
        page.wait_for("!document.getElementById('identify').disabled")
        page.click("#identify")
        page.wait_for("document.getElementById('results').dataset.state === 'done'")
        title = page.evaluate("document.querySelector('#pills strong').textContent")
        assert title.startswith("Unknown drug")
        assert page.evaluate("document.querySelector('#pills .badge.unknown').textContent") \
            == "unknown"
        assert "not an identification" in page.evaluate(
            "document.querySelector('#pills .note').textContent")
        page.screenshot(tmp_path / "unknown.png")
