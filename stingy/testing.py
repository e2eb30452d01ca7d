"""Property tests for your own sparsification or KD loss: hypothesis strategies and checkers.

Strategies (hypothesis): :func:`logit_rows` (plain rows), :func:`tied_rows` (many equal values),
:func:`extreme_rows` (values up to +-1e4), :func:`two_level_cases` and
:func:`two_level_rows` (the T3/T5 worst cases),
:func:`heavy_tailed_rows` (Cauchy-like spread), :func:`any_rows` (all of them),
:func:`rows_and_k` (a row with a keep count) and :func:`stored_topk_rows` (a student row with
the teacher's stored top-k rows). The toolkit's own tests draw from the same strategies.

Checkers run the toolkit's invariants against *your* function and return a
:class:`CheckResult` holding the first counterexample, shrunk by hypothesis:

* :func:`check_sparsify` - ``sparsify(logits, k) -> sparse logits`` (one row, NumPy float64):
  exactly k finite entries, equal to the input there, on a top-k set (T1 support); the
  softmax of the output is p/m on it (T1); its kept mass m lies in [k/K, upper] (T2);
  TV(p~, U_M) <= tanh(D_M / 4T) (T3).
* :func:`check_topk_loss` - ``loss(student, topk_indices, topk_values, temperature)`` (rows,
  NumPy): equals T^2 KL(p~ || q) = ``kd_loss(student, teacher, labels, T, 1, k=k)`` computed
  on the dense teacher (the top-k-loss identity).

Example: a sparsifier that keeps ``k`` classes by ``np.argsort`` but with an off-by-one::

    import numpy as np
    from stingy.testing import check_sparsify

    def my_sparsify(logits, k):
        out = np.full_like(logits, -np.inf)
        keep = np.argsort(logits)[-k - 1:-1]     # wrong: drops the largest logit
        out[keep] = logits[keep]
        return out

    result = check_sparsify(my_sparsify)
    print(result)
    # check_sparsify: FAILED (T1 support) ... counterexample: logits=[0.0, 1.0], k=1, ...

``result.passed`` is False and ``result.counterexample`` holds the shrunk inputs;
``result.raise_if_failed()`` raises AssertionError with the same text (for use inside pytest).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

try:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
except ImportError as err:  # hypothesis is the "test" extra, not a core dependency
    raise ImportError("stingy.testing needs hypothesis: pip install 'stingy[test]'") from err

MAX_CLASSES = 12
LOGIT_BOUND = 40.0
EXTREME = 1e4


# ------------------------------------------------------------------ strategies
def logit_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES,
               bound: float = LOGIT_BOUND):
    """Rows of finite floats in [-bound, bound] (a list of K floats)."""
    return st.lists(st.floats(-bound, bound), min_size=min_classes, max_size=max_classes)


def tied_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """Rows drawn from three values, so ties (also at the k-th place) are common."""
    return st.lists(st.sampled_from([-1.0, 0.0, 2.5]), min_size=min_classes,
                    max_size=max_classes)


def extreme_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """Rows mixing +-1e4 with ordinary values (overflow and cancellation cases)."""
    values = st.one_of(st.sampled_from([-EXTREME, EXTREME]), st.floats(-EXTREME, EXTREME))
    return st.lists(values, min_size=min_classes, max_size=max_classes)


@st.composite
def two_level_cases(draw, min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """(row, k): the extremal rows of T3 and T5 (stingy.theory.approximation.two_level_logits),
    float64 tensors with j of the k kept classes at D, the rest of M at 0 and Mc at -1 - D."""
    from stingy.theory.approximation import two_level_logits

    num_classes = draw(st.integers(min_classes, max_classes))
    k = draw(st.integers(1, num_classes))
    top_count = draw(st.integers(0, k))
    spread = draw(st.floats(0.0, 30.0))
    return two_level_logits(k, top_count, spread, num_classes), k


def two_level_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """The rows of :func:`two_level_cases` as lists (their k dropped)."""
    return two_level_cases(min_classes, max_classes).map(lambda case: case[0].tolist())


def heavy_tailed_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """Cauchy-like rows, tan(pi/2 * 0.999 * x) for x in [-1, 1]: a few logits far out."""
    return st.lists(st.floats(-1.0, 1.0).map(lambda x: math.tan(0.4995 * math.pi * x)),
                    min_size=min_classes, max_size=max_classes)


def any_rows(min_classes: int = 2, max_classes: int = MAX_CLASSES):
    """Any of the row strategies above."""
    return st.one_of(logit_rows(min_classes, max_classes), tied_rows(min_classes, max_classes),
                     extreme_rows(min_classes, max_classes),
                     two_level_rows(min_classes, max_classes),
                     heavy_tailed_rows(min_classes, max_classes))


@st.composite
def rows_and_k(draw, rows=None, max_k_below_classes: bool = False):
    """(row as float64 array, k in [1, K]) (k < K with ``max_k_below_classes``)."""
    row = np.asarray(draw(rows if rows is not None else any_rows()), dtype=np.float64)
    upper = row.shape[0] - 1 if max_k_below_classes else row.shape[0]
    return row, draw(st.integers(1, max(upper, 1)))


@st.composite
def stored_topk_rows(draw, max_rows: int = 3, max_classes: int = MAX_CLASSES):
    """A stored top-k case: dict with dense ``teacher`` (n, K), ``student`` (n, K), ``k``, the
    stored ``indices`` and ``values`` (n, k) (ties to the lowest index) and ``temperature``."""
    from stingy.theory.topk import topk_teacher

    num_rows = draw(st.integers(1, max_rows))
    num_classes = draw(st.integers(2, max_classes))
    rows = st.one_of(logit_rows(num_classes, num_classes), tied_rows(num_classes, num_classes),
                     heavy_tailed_rows(num_classes, num_classes))
    teacher = np.array([draw(rows) for _ in range(num_rows)], dtype=np.float64)
    student = np.array([draw(logit_rows(num_classes, num_classes, 10.0))
                        for _ in range(num_rows)], dtype=np.float64)
    k = draw(st.integers(1, num_classes))
    temperature = draw(st.floats(0.5, 50.0))
    stored = topk_teacher(teacher, k, (temperature,))
    return {"teacher": teacher, "student": student, "k": k, "temperature": temperature,
            "indices": stored.indices.numpy(), "values": stored.values.numpy(),
            "logsumexp": stored.log_partition[:, 0].numpy()}


# ------------------------------------------------------------------ checkers
@dataclass
class CheckResult:
    """Outcome of a checker: which invariant failed first, on which (shrunk) inputs."""

    check: str
    passed: bool
    invariant: str = ""
    message: str = ""
    counterexample: dict = field(default_factory=dict)

    def __str__(self) -> str:
        if self.passed:
            return f"{self.check}: passed"
        shown = ", ".join(f"{key}={_show(value)}" for key, value in self.counterexample.items())
        return (f"{self.check}: FAILED ({self.invariant}) {self.message}; counterexample: "
                f"{shown}")

    def raise_if_failed(self) -> None:
        if not self.passed:
            raise AssertionError(str(self))


def _show(value):
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, separator=", ")
    return repr(value)


class _Violation(Exception):
    def __init__(self, invariant: str, message: str):
        super().__init__(f"{invariant}: {message}")
        self.invariant, self.message = invariant, message


def _run_property(check: str, strategy, prop, max_examples: int) -> CheckResult:
    """Run ``prop(case) -> dict of shown inputs`` (raising _Violation) under hypothesis and
    return the last failure seen: hypothesis replays the shrunk counterexample last."""
    failures = []

    @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck), print_blob=False,
              report_multiple_bugs=False)
    @given(strategy)
    def run(case):
        shown = {}
        try:
            prop(case, shown)
        except _Violation as violation:
            failures.append(CheckResult(check, False, violation.invariant, violation.message,
                                        dict(shown)))
            raise AssertionError(str(violation)) from None

    try:
        run()
    except AssertionError:
        return failures[-1]
    return CheckResult(check, True)


def _call(function, *args):
    """The user's function, with any exception turned into a violation."""
    try:
        return np.asarray(function(*args), dtype=np.float64)
    except Exception as err:  # noqa: BLE001 - any crash of the user's code is a finding
        raise _Violation("runs", f"raised {type(err).__name__}: {err}") from None


def check_sparsify(sparsify, max_examples: int = 300, temperature: float = 4.0,
                   rtol: float = 1e-9) -> CheckResult:
    """Run the T1-T3 invariants against ``sparsify(logits, k)`` (see the module docstring)."""
    from stingy.theory.kept_mass import kept_mass_upper_bound

    def prop(case, shown):
        row, k = case
        shown.update(logits=row, k=k, temperature=temperature)
        out = _call(sparsify, row.copy(), k)
        shown["output"] = out
        if out.shape != row.shape:
            raise _Violation("shape", f"output shape {out.shape} != input shape {row.shape}")
        kept = np.isfinite(out)
        if int(kept.sum()) != k or bool((out[~kept] != -np.inf).any()):
            raise _Violation("T1 support", f"{int(kept.sum())} finite entries, k = {k} "
                             "(the rest must be -inf)")
        if not np.array_equal(out[kept], row[kept]):
            raise _Violation("T1 support", "kept entries differ from the input logits")
        if k < row.size and row[kept].min() < row[~kept].max():
            raise _Violation("T1 support", f"kept logit {row[kept].min():g} below dropped "
                             f"logit {row[~kept].max():g}: not a top-k set")
        scaled = row / temperature
        log_p = scaled - np.logaddexp.reduce(scaled)
        log_m = np.logaddexp.reduce(log_p[kept])
        target = np.exp(out[kept] / temperature - np.logaddexp.reduce(out[kept] / temperature))
        if not np.allclose(target, np.exp(log_p[kept] - log_m), rtol=1e-7, atol=1e-12):
            raise _Violation("T1 target", "softmax(output/T) is not p/m on the kept set")
        m = math.exp(log_m)
        upper = float(kept_mass_upper_bound(torch.tensor(np.ptp(row)), k, row.size,
                                            temperature))
        if not k / row.size * (1 - rtol) - 1e-12 <= m <= upper * (1 + rtol) + 1e-12:
            raise _Violation("T2 kept mass", f"m = {m:.12g} outside [k/K, upper] = "
                             f"[{k / row.size:.12g}, {upper:.12g}]")
        tv = 0.5 * float(np.abs(target - 1 / k).sum())
        bound = math.tanh(np.ptp(row[kept]) / (4 * temperature))
        if tv > bound * (1 + rtol) + 1e-12:
            raise _Violation("T3 TV bound", f"TV(p~, U_M) = {tv:.12g} > tanh(D_M/4T) = "
                             f"{bound:.12g}")

    return _run_property("check_sparsify", rows_and_k(), prop, max_examples)


def check_topk_loss(loss, max_examples: int = 200, rtol: float = 1e-6,
                    atol: float = 1e-8) -> CheckResult:
    """The top-k-loss identity against ``loss(student, topk_indices, topk_values, temperature)``:
    it must equal kd_loss(student, teacher, labels, T, alpha=1, k=k) on the dense teacher
    (T^2 KL(p~ || softmax(s/T)), batch mean)."""
    from stingy.theory.operators import kd_loss

    def prop(case, shown):
        shown.update(student=case["student"], topk_indices=case["indices"],
                     topk_values=case["values"], temperature=case["temperature"],
                     teacher=case["teacher"])
        value = float(_call(loss, case["student"].copy(), case["indices"].copy(),
                            case["values"].copy(), case["temperature"]))
        labels = np.zeros(case["student"].shape[0], dtype=np.int64)
        expected = float(kd_loss(case["student"], case["teacher"], labels,
                                 case["temperature"], 1.0, k=case["k"]))
        shown["value"], shown["expected"] = value, expected
        if not math.isclose(value, expected, rel_tol=rtol, abs_tol=atol):
            raise _Violation("top-k-loss identity", f"loss {value:.12g} != kd_loss(..., k) "
                             f"{expected:.12g}")

    return _run_property("check_topk_loss", stored_topk_rows(), prop, max_examples)
