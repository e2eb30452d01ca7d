"""The lab page in a real browser: it loads cleanly, its controls drive its numbers, every
chart has labelled axes, it fits a phone's width, and a screenshot is written."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "runs" / "lab" / "lab.png"

SHOWN = ("Object.fromEntries([...document.querySelectorAll('[data-key]')]"
         ".map(e => [e.dataset.key, e.textContent]))")


def test_page_loads_without_console_errors(page):
    page.evaluate("lab.toy.run(20)")
    assert page.errors == []
    assert "Stingy Teacher lab" in page.evaluate("document.title")


def test_each_control_changes_the_shown_numbers(page):
    changes = {"T": ("20", "4"), "k": ("2", "5"), "K": ("10", "30"), "spread": ("5", "12"),
               "seed": ("1", "3"), "preset": ("random", "two_level")}
    for control, (before, after) in changes.items():
        page.set_control(control, before)
        shown_before = page.evaluate(SHOWN)
        page.set_control(control, after)
        shown_after = page.evaluate(SHOWN)
        changed = [key for key in shown_before if shown_before[key] != shown_after[key]]
        assert changed, f"moving {control} from {before} to {after} changed no number"
        page.set_control(control, before)
    assert page.errors == []


def test_alpha_drives_the_toy(page):
    page.set_control("alpha", "0.3")
    assert page.evaluate("[lab.toy.model.alpha, lab.toy.model.steps]") == [0.3, 0]
    page.set_control("alpha", "0.9")
    assert page.evaluate("lab.toy.model.alpha") == 0.9


def test_trained_teacher_preset_uses_the_embedded_logits(page, lab_file):
    import numpy as np

    logits = np.load(REPO / "results" / "cifar10_quick" / "teacher_logits.npz")["normal"]
    page.set_control("preset", "trained")
    page.set_control("seed", "3")
    assert page.evaluate("lab.teacher()") == logits[3].astype(float).tolist()
    assert page.evaluate("lab.state.K") == logits.shape[1]
    page.set_control("preset", "random")
    page.set_control("seed", "1")


def test_results_panel_plots_the_simulations_and_cifar(page):
    titles = page.evaluate("[...document.querySelectorAll('#results-body canvas')].length")
    assert titles == 4   # three simulation noise levels and the CIFAR-10 quick run


def test_every_chart_has_axes_with_titles_and_tick_values(page):
    labels = page.evaluate("Object.fromEntries([...document.querySelectorAll('canvas')]"
                           ".map(c => [c.id, c.getAttribute('aria-label')]))")
    assert len(labels) >= 12
    one_axis = {"mass", "tv", "ratio", "terms"}   # a value on a scale; bars by name
    for name, label in labels.items():
        assert label and "x axis" in label and "ticks" in label, name
        assert ("y axis" in label) == (name not in one_axis), name


def test_page_fits_a_phone_width(page):
    """At 400 px the page does not scroll sideways and no element sticks out."""
    page.send("Emulation.setDeviceMetricsOverride",
              {"width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": True})
    try:
        assert page.evaluate("window.innerWidth") == 400
        assert page.evaluate("document.documentElement.scrollWidth") <= 400
        sticking_out = page.evaluate("[...document.querySelectorAll('body *')].filter(e => "
                                     "e.getBoundingClientRect().right > 400).map(e => "
                                     "e.tagName + '#' + e.id)")
        assert sticking_out == []
    finally:
        page.send("Emulation.clearDeviceMetricsOverride")


def test_screenshot_is_written(page):
    page.evaluate("lab.toy.reset(), lab.toy.run(300)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(SCREENSHOT).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
