"""The lab page in a real browser: it loads cleanly, its controls drive its numbers, and a
screenshot is written."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "runs" / "lab" / "lab.png"

SHOWN = ("Object.fromEntries([...document.querySelectorAll('[data-key]')]"
         ".map(e => [e.dataset.key, e.textContent]))")


def set_control(page, control: str, value) -> None:
    page.evaluate(f"(() => {{ const el = document.getElementById('{control}'); el.value = "
                  f"'{value}'; el.dispatchEvent(new Event('input')); return el.value; }})()")


def test_page_loads_without_console_errors(page):
    page.evaluate("lab.toy.run(20)")
    assert page.errors == []
    assert "Stingy Teacher lab" in page.evaluate("document.title")


def test_each_control_changes_the_shown_numbers(page):
    changes = {"T": ("20", "4"), "k": ("2", "5"), "K": ("10", "30"), "spread": ("5", "12"),
               "seed": ("1", "3"), "alpha": ("0.9", "0.3"), "preset": ("random", "two_level")}
    for control, (before, after) in changes.items():
        set_control(page, control, before)
        shown_before = page.evaluate(SHOWN)
        set_control(page, control, after)
        shown_after = page.evaluate(SHOWN)
        changed = [key for key in shown_before if shown_before[key] != shown_after[key]]
        assert changed, f"moving {control} from {before} to {after} changed no number"
        set_control(page, control, before)
    assert page.errors == []


def test_trained_teacher_preset_uses_the_embedded_logits(page, lab_file):
    import numpy as np

    logits = np.load(REPO / "results" / "cifar10_quick" / "teacher_logits.npz")["normal"]
    set_control(page, "preset", "trained")
    set_control(page, "seed", "3")
    assert page.evaluate("lab.teacher()") == logits[3].astype(float).tolist()
    assert page.evaluate("lab.state.K") == logits.shape[1]
    set_control(page, "preset", "random")
    set_control(page, "seed", "1")


def test_results_panel_plots_the_simulations_and_cifar(page):
    titles = page.evaluate("[...document.querySelectorAll('#results-body canvas')].length")
    assert titles == 4   # three simulation noise levels and the CIFAR-10 quick run


def test_screenshot_is_written(page):
    page.evaluate("lab.toy.reset(), lab.toy.run(300)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    data = page.screenshot(SCREENSHOT).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
