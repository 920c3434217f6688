"""The station web page in a real browser: Debian's Chromium, headless, driven by
Playwright, against ``inspector run`` on the sim line.

Four things a person at the line would check: the live verdict changes; on an NG part
whose ground truth has a defect the overlay is drawn where the defect is (the truth is
rendered here again from the sim's seed, not read from the page); the gallery lists the
archived NG parts and opens one with its image, overlay and sidecar; a path-traversal
URL is refused. Set INSPECTOR_HMI_SCREENSHOT=docs/hmi.png to refresh the screenshot in
the docs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from inspector.config import SimCameraConfig
from inspector.sim.render import render_part
from tests.support.hmi_daemon import CHROMIUM, CHROMIUM_FLAGS, POOL, SEED, Daemon, running_daemon

WATCH = """() => {
  window.__seen = {verdicts: new Set(), parts: new Set()};
  const note = () => {
    window.__seen.verdicts.add(document.getElementById('verdict').textContent);
    window.__seen.parts.add(document.getElementById('part-id').textContent);
  };
  new MutationObserver(note).observe(document.getElementById('part-id'), {childList: true});
}"""

SHOWN = """() => ({
  verdict: document.getElementById('verdict').textContent,
  reason: document.getElementById('reason').textContent,
  part_id: Number(document.getElementById('part-id').textContent),
  trigger_seq: Number(document.getElementById('trigger-seq').textContent),
  href: document.getElementById('live-img').getAttribute('href'),
  boxes: [...document.querySelectorAll('#live-overlay rect.finding')].map(
    r => r.dataset.box.split(',').map(Number)),
  on_screen: [...document.querySelectorAll('#live-overlay rect.finding')].map(r => {
    const b = r.getBoundingClientRect(); return [b.x, b.y, b.width, b.height]; }),
  image_on_screen: (() => { const b = document.getElementById('live-svg').getBoundingClientRect();
    return [b.x, b.y, b.width, b.height]; })(),
})"""


def iou(a: list[float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def check_live(page: Page) -> None:
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'")
    page.evaluate(WATCH)
    page.wait_for_function(
        "() => window.__seen.verdicts.has('OK') && window.__seen.verdicts.has('NG')"
        " && window.__seen.parts.size >= 4",
        timeout=30_000,
    )
    # the verdict history: the last parts, newest first, each OK or NG
    page.wait_for_function("() => document.querySelectorAll('#history tr').length >= 4")
    rows = page.eval_on_selector_all(
        "#history tr", "rs => rs.map(r => [Number(r.cells[0].textContent), r.cells[1].textContent])"
    )
    assert all(v in ("OK", "NG") for _, v in rows) and [p for p, _ in rows] == sorted(
        (p for p, _ in rows), reverse=True
    )


def check_overlay_on_truth(page: Page) -> dict:
    """Wait for an NG part with a defect on it; its drawn boxes must sit on the defect."""
    sim = SimCameraConfig(seed=SEED, pool_size=POOL, defects={"rate": 0.5})
    for _ in range(40):
        page.wait_for_function(
            "() => document.getElementById('reason').textContent === 'defect'"
            " && document.querySelector('#live-overlay rect.finding') !== null",
            timeout=30_000,
        )
        shown = page.evaluate(SHOWN)  # one read: a consistent view of one part
        if shown["reason"] != "defect" or not shown["boxes"]:
            continue
        _, truth = render_part(SEED, shown["trigger_seq"] % POOL, sim)
        assert truth, f"part {shown['part_id']} NG 'defect' on a part without a defect"
        for box in shown["boxes"]:  # every drawn finding lies on a real defect
            assert max(iou(box, lb.box) for lb in truth) > 0.3, (box, truth)
        ix, iy, iw, ih = shown["image_on_screen"]
        for x, y, w, h in shown["on_screen"]:  # drawn, visible, over the image
            assert w > 2 and h > 2 and ix <= x and iy <= y and x + w <= ix + iw + 1
            assert y + h <= iy + ih + 1
        assert shown["href"].startswith("data:image/jpeg;base64,")
        return shown
    raise AssertionError("no NG part with findings shown")


def screenshot_of_an_ng_part(page: Page, path: Path) -> None:
    """Freeze the live view (the page's pause button) on an NG part with its overlay, take
    the screenshot, resume; copied to INSPECTOR_HMI_SCREENSHOT when set."""
    page.wait_for_function(
        "() => { const ok = document.getElementById('reason').textContent === 'defect'"
        " && document.querySelector('#live-overlay rect.finding') !== null;"
        " if (ok) document.getElementById('pause').click(); return ok; }",
        timeout=30_000,
    )
    shown = page.evaluate(SHOWN)
    page.wait_for_timeout(1500)  # parts go on arriving; the frozen view must not change
    assert page.evaluate(SHOWN) == shown
    page.screenshot(path=str(path))
    page.click("#pause")
    page.wait_for_function(
        f"() => Number(document.getElementById('part-id').textContent) > {shown['part_id']}"
    )
    assert path.stat().st_size > 10_000
    if target := os.environ.get("INSPECTOR_HMI_SCREENSHOT"):
        Path(target).write_bytes(path.read_bytes())


def check_gallery(page: Page, daemon: Daemon) -> None:
    page.click("#tab-gallery")
    page.wait_for_selector(".entry")
    names = page.eval_on_selector_all(".entry", "els => els.map(e => e.dataset.name)")
    on_disk = {p.stem for p in daemon.archive.glob("*.png")}
    assert names and set(names) <= on_disk, set(names) - on_disk
    assert names == sorted(names, reverse=True)  # newest first
    entry = page.locator(".entry", has=page.locator(".reason-tag", has_text="defect")).first
    name = entry.get_attribute("data-name")
    entry.click()
    page.wait_for_selector("#detail:not(.hidden) #detail-overlay rect.finding")
    sidecar = json.loads(page.text_content("#detail-sidecar"))
    on_disk_sidecar = json.loads((daemon.archive / f"{name}.json").read_text())
    assert sidecar == on_disk_sidecar and sidecar["part_id"] == int(name.split("_")[1])
    assert {"trigger_seq", "findings", "stages_ms", "model_hash", "config_hash"} <= set(sidecar)
    drawn = page.eval_on_selector_all(
        "#detail-overlay rect.finding", "rs => rs.map(r => r.dataset.box.split(',').map(Number))"
    )
    assert drawn == [[float(c) for c in f["box"]] for f in sidecar["findings"]]
    href = page.get_attribute("#dl-image", "href")
    download = page.request.get(daemon.url.rstrip("/") + href)
    assert download.ok and download.body() == (daemon.archive / f"{name}.png").read_bytes()
    assert download.headers["content-disposition"].startswith("attachment")
    page.click("#detail-close")


def check_traversal_refused(page: Page, daemon: Daemon) -> None:
    for path in ("archive/..%2f..%2f..%2fetc%2fpasswd", "archive/%2e%2e/%2e%2e/etc/passwd"):
        resp = page.goto(daemon.url + path)
        assert resp is not None and resp.status == 404, (path, resp and resp.status)
        assert "root:" not in page.content()


def test_station_page_in_chromium(tmp_path: Path) -> None:
    assert CHROMIUM.exists(), "chromium missing: run tools/get-chromium.sh (make test does)"
    with running_daemon(tmp_path) as daemon, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),  # a new, empty profile
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(daemon.url)
            check_live(page)
            check_overlay_on_truth(page)
            check_gallery(page, daemon)
            page.click("#tab-live")
            screenshot_of_an_ng_part(page, tmp_path / "hmi.png")
            check_traversal_refused(page, daemon)
            assert not errors, errors
        finally:
            browser.close()
    assert daemon.exit_code == 0 and daemon.stop_s < 2.0, (daemon.exit_code, daemon.stop_s)
    kinds = {e.get("event") for e in daemon.events}
    assert "hmi_serving" in kinds and not kinds & {"fault", "hmi_crashed", "hmi_stop_incomplete"}
