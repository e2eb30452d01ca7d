"""The page's guided steps, warnings and live curves in a real browser: each "Try this" sets
what its step says, every number a notice prints is the live value, the expansions warn
outside their range, and the toy's curves get a point every 10 steps as it trains."""

from __future__ import annotations

import re

import pytest

from stingy.methods import METHODS

LIVE = ("[...document.querySelectorAll('#notice-{i} [data-live], #warning-{i} [data-live]')]"
        ".map(e => [e.dataset.live, e.textContent])")


@pytest.fixture
def fresh(page, lab_file):
    """The page, opened again after the test (the steps change its controls and its toy)."""
    yield page
    page.load(lab_file.as_uri())


def try_step(page, step: int) -> None:
    page.evaluate(f"document.querySelector('[data-try=\"{step}\"]').click()")


def text(page, element_id: str) -> str:
    return page.evaluate(f"document.getElementById('{element_id}').textContent")


def assert_live_numbers(page, step: int) -> None:
    """Every number tagged in step's notice and warning is the page's number to 3 digits."""
    shown, numbers = page.evaluate(LIVE.format(i=step)), page.evaluate("lab.numbers()")
    assert shown, f"step {step}'s notice shows no live number"
    for key, value in shown:
        assert float(value) == pytest.approx(numbers[key], rel=5e-3, abs=1e-12), key


def test_there_are_six_steps_each_with_a_try_button_and_a_notice(page):
    assert page.evaluate("[...document.querySelectorAll('[data-try]')].map(b => "
                         "Number(b.dataset.try))") == [1, 2, 3, 4, 5, 6]
    assert page.evaluate("document.querySelectorAll('#steps-nav button').length") == 6
    for step in range(1, 7):
        assert text(page, f"notice-{step}").strip(), step


@pytest.mark.parametrize("step", [1, 2, 3, 4])
def test_try_this_sets_its_controls_and_the_notice_follows_them(fresh, step):
    page = fresh
    try_step(page, step)
    controls, state = page.evaluate(f"lab.steps[{step}].controls"), page.evaluate("lab.state")
    assert {key: state[key] for key in controls} == controls
    assert_live_numbers(page, step)
    before = text(page, f"notice-{step}")
    page.set_control("T", "3")
    assert text(page, f"notice-{step}") != before
    assert_live_numbers(page, step)


def test_inline_slider_moves_the_control(fresh):
    page = fresh
    page.evaluate("(() => { const copy = document.querySelector('#step-3 [data-mirror=T]'); "
                  "copy.value = '7'; copy.dispatchEvent(new Event('input')); })()")
    assert page.evaluate("[lab.state.T, document.getElementById('T').value]") == [7, "7"]
    assert page.evaluate("[...document.querySelectorAll('[data-mirror=T]')].every(e => "
                         "e.value === '7')")


@pytest.mark.parametrize("step", [5, 6])
def test_toy_steps_train_their_students_and_report_them_live(fresh, step):
    page = fresh
    try_step(page, step)
    playing = page.evaluate("lab.toy.playing")
    page.evaluate("lab.toy.setPlaying(false)")
    assert playing
    students = page.evaluate(f"lab.steps[{step}].students")
    assert page.evaluate("lab.toy.model.methods") == students
    assert page.evaluate("[lab.state.K, lab.state.k, lab.state.T, lab.toy.model.k]") == \
        [10, 2, 20, 2]
    metrics = page.evaluate("lab.toy.run(20)")
    notice = text(page, f"notice-{step}")
    assert f"At step {page.evaluate('lab.toy.model.steps')}:" in notice
    for name in students:
        assert METHODS[name].label in notice
        shown = page.evaluate(f"[...document.querySelectorAll('#notice-{step} [data-toy^="
                              f"\"{name}-\"]')].map(e => parseFloat(e.textContent))")
        assert shown == [round(100 * metrics[name]["accuracy"], 1),
                         round(metrics[name]["logit_gap"], 1)]


def test_expansion_warnings_show_only_outside_their_range(fresh):
    page = fresh
    visible = ("['warning-3', 'warning-4'].map(id => document.getElementById(id).offsetHeight "
               "> 0)")
    try_step(page, 4)
    assert page.evaluate(visible) == [False, False]
    # two-level logits with D_M = 20 at T = 1: the order-1 estimate is ten times the exact ratio
    for control, value in (("preset", "two_level"), ("spread", "20"), ("T", "1")):
        page.set_control(control, value)
    assert page.evaluate(visible) == [True, True]
    numbers = page.evaluate("lab.numbers()")
    assert numbers["signal_to_drive_order_one"] > 5 * numbers["signal_to_drive"]
    for step in (3, 4):
        assert "Outside the expansion's range" in text(page, f"warning-{step}")
        assert_live_numbers(page, step)
    page.set_control("T", "40")
    assert page.evaluate(visible) == [False, False]


def axis_range(label: str) -> tuple[float, float]:
    low, high = re.search(r"x axis .*? from (\S+) to ([^\s,]+)", label).groups()
    return float(low), float(high)


def test_t5_axis_is_fixed_and_t4_chart_leaves_out_the_constant(fresh):
    page = fresh
    ratio_axes = set()
    for temperature in ("1", "20", "40"):
        page.set_control("T", temperature)
        ratio_axes.add(page.evaluate("document.getElementById('ratio').getAttribute('aria-label')"))
        terms = page.evaluate("document.getElementById('terms').getAttribute('aria-label')")
        numbers = page.evaluate("lab.numbers()")
        assert "bars drive, matching, spread, remainder" in terms
        low, high = axis_range(terms)
        largest = max(abs(numbers[key]) for key in ("order_t", "matching", "student_spread",
                                                   "remainder"))
        assert low == -high and largest <= high < numbers["constant"]
    assert len(ratio_axes) == 1 and "from 0.001 to 100 (log scale)" in ratio_axes.pop()


def test_curves_get_a_point_every_ten_steps(page):
    curves = ("['curve-accuracy', 'curve-gap'].map(id => document.getElementById(id))")
    page.evaluate("lab.toy.reset()")
    before = page.evaluate(f"{curves}.map(c => c.toDataURL())")
    labels = page.evaluate(f"{curves}.map(c => c.getAttribute('aria-label'))")
    assert all("1 points per student" in label for label in labels)
    page.evaluate("lab.toy.run(40)")
    assert page.evaluate("lab.toy.model.history.map(h => h.step)") == [0, 10, 20, 30, 40]
    labels = page.evaluate(f"{curves}.map(c => c.getAttribute('aria-label'))")
    assert all("5 points per student" in label for label in labels)
    assert "test accuracy (%) from 0 to 100" in labels[0] and "training step" in labels[0]
    after = page.evaluate(f"{curves}.map(c => c.toDataURL())")
    assert before[0] != after[0] and before[1] != after[1]
    assert page.errors == []
