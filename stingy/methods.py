"""The one registry of training methods, read by every layer.

Simulations (``stingy.simulations.training``), CIFAR recipes and their objectives
(``stingy.empirical.recipes`` / ``objectives``), the figures and the report all take a method's
name, its teacher requirement, its target and its look from :data:`METHODS`, so a method has
the same name everywhere (``normal_kd`` in a simulation sweep, a recipe's ``method.name`` and a
figure legend alike).

A method's loss is fixed by its fields. With student logits s, teacher logits z, labels y,
temperature T and weight a (Hinton's convention, T^2-scaled KL):

    L = (1 - a) CE(s, y) + sign * a * T^2 KL(p || softmax(s_M / T))

where the target p = softmax(t_M / T) and

- ``target`` picks t: ``"labels"`` (no soft target, L = CE(s, y)), ``"teacher"`` (t = z),
  ``"reversed"`` (t = reverse_logits(z)) or ``"uniform"`` (t = 0 at T = 1: label smoothing
  with epsilon = a, up to a constant);
- ``sparse_target``: t off the teacher's top-k set M is -inf (stingy), else M is every class;
- ``within_kept``: the student's softmax is renormalised over M too (s_M), else s_M = s;
- ``sign``: +1 distils towards p; -1 trains away from it (the Nasty Teacher objective,
  weight ``method.nasty_weight`` in place of a, and no (1 - a) factor on CE);
- ``tail_bucket``: the target keeps p on M unrenormalised plus one tail cell holding the
  dropped mass 1 - m, the student's (q on M, Q = sum_{Mc} q) (stingy.theory.tail_bucket);
- ``uniform_floor``: the target keeps the sparse target p~ on M scaled to mass r = k/K and
  spreads the rest evenly over the dropped classes, 1/K each: p_floor = U_K + r (p~ - U_M).
  It uses nothing beyond the sparse row, and its mean over M equals its mean off M, so the
  drive T (U_M - U_K) of the stingy target is gone and the teacher's ranking inside M stays;
- ``sampled``: random-sampling KD (Anshumann et al., "Sparse Logit Sampling", ACL 2025): the
  target is k classes drawn with replacement from the teacher's tempered softmax p, each
  with weight 1/k (``stingy.objective.sample_rows``), so it equals p in expectation; the
  loss is the KD loss against that target. Its k is the number of samples, not a top-k set;
- ``data_free``: the student never sees the training images; a generator synthesises its
  inputs (DAFL, ``stingy.empirical.dafl``).

Every layer trains a method through its one objective: ``method(name).objective(settings,
num_classes)`` (:mod:`stingy.objective`) resolves T, alpha, k and the flags once, from a
:class:`MethodSettings`, and returns the loss callable every loop calls.

Adding a method: one :class:`Method` entry below; a target kind that none of them builds yet
needs its target added in :mod:`stingy.objective` (and in the simulations' vectorised
``TargetBank``), plus its tests in ``tests/test_methods.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from stingy.settings import (ALPHA, KEPT_COUNT, RATIO, TEMPERATURE, Choice, Number, Settings,
                             ZeroOr, setting)

# Okabe & Ito (2008) colour-blind-safe palette; yellow is left out (too light on white).
BLACK, ORANGE, SKY, GREEN, BLUE, VERMILLION, PURPLE, GREY = (
    "#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#999999")

TARGETS = ("labels", "teacher", "reversed", "uniform")
LAYERS = ("simulations", "cifar")


@dataclass(frozen=True)
class Method:
    """One training method: its name in every layer, its loss (see the module docstring),
    and how figures show it."""

    name: str
    label: str
    colour: str
    needs_teacher: bool
    target: str
    sparse_target: bool = False
    within_kept: bool = False
    sign: int = 1
    data_free: bool = False
    tail_bucket: bool = False
    uniform_floor: bool = False
    sampled: bool = False
    layers: tuple[str, ...] = LAYERS
    description: str = ""

    def __post_init__(self):
        if self.target not in TARGETS:
            raise ValueError(f"Method {self.name!r}: target must be one of {', '.join(TARGETS)}, "
                             f"got {self.target!r}")
        if self.sign not in (1, -1):
            raise ValueError(f"Method {self.name!r}: sign must be 1 or -1, got {self.sign!r}")
        if (self.within_kept or self.tail_bucket or self.uniform_floor or self.sampled) \
                and not self.sparse_target:
            raise ValueError(f"Method {self.name!r}: within_kept, tail_bucket, uniform_floor "
                             "and sampled need sparse_target")
        if self.within_kept + self.tail_bucket + self.uniform_floor + self.sampled > 1:
            raise ValueError(f"Method {self.name!r}: within_kept, tail_bucket, uniform_floor "
                             "and sampled exclude each other")
        if self.needs_teacher != (self.target in ("teacher", "reversed")):
            raise ValueError(f"Method {self.name!r}: needs_teacher must be true exactly for "
                             f"the teacher and reversed targets")
        unknown = set(self.layers) - set(LAYERS)
        if unknown:
            raise ValueError(f"Method {self.name!r}: layers must be among {', '.join(LAYERS)}, "
                             f"got {sorted(unknown)}")

    @property
    def distils(self) -> bool:
        """Whether the loss has a soft-target term (every target but the labels)."""
        return self.target != "labels"

    @property
    def needs_dense_teacher(self) -> bool:
        """Whether the loss reads the teacher's logits off its top-k set (normal, reversed and
        nasty targets, and the tail bucket's log-partition): stored top-k rows cannot feed it."""
        return self.needs_teacher and (not self.sparse_target or self.tail_bucket
                                       or self.sampled)

    def objective(self, settings: MethodSettings, num_classes: int,
                  label_smoothing: float = 0.0):
        """This method's loss with ``settings`` resolved once (stingy.objective.Objective)."""
        from stingy.objective import build_objective

        return build_objective(self, settings, num_classes, label_smoothing)


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("scratch", "Scratch (labels only)", BLACK, needs_teacher=False, target="labels",
           description="cross-entropy on the labels only"),
    Method("normal_kd", "Normal KD", BLUE, needs_teacher=True, target="teacher",
           description="Hinton KD from the teacher's full softmax"),
    Method("label_smoothing", "Label smoothing", ORANGE, needs_teacher=False, target="uniform",
           description="KD from the uniform distribution at T = 1"),
    Method("reversed_kd", "Reversed logits", PURPLE, needs_teacher=True, target="reversed",
           description="KD from the teacher's logits in reversed order"),
    Method("nasty_teacher", "Nasty teacher", SKY, needs_teacher=True, target="teacher",
           sign=-1, layers=("cifar",),
           description="trains a Nasty Teacher: CE minus w T^2 KL to the normal teacher"),
    Method("stingy_kd", "Stingy KD", VERMILLION, needs_teacher=True, target="teacher",
           sparse_target=True, description="KD from the teacher's top-k logits, the rest -inf"),
    Method("tail_bucket_kd", "Tail-bucket KD", "#8C564B", needs_teacher=True, target="teacher",
           sparse_target=True, tail_bucket=True,
           description="stingy target plus one cell with the teacher's dropped mass"),
    Method("uniform_floor_kd", "Uniform-floor KD", "#332288", needs_teacher=True,
           target="teacher", sparse_target=True, uniform_floor=True,
           description="stingy target at mass k/K on M, 1/K on each dropped class"),
    Method("sampled_kd", "Sampled KD", "#88CCEE", needs_teacher=True, target="teacher",
           sparse_target=True, sampled=True,
           description="k classes sampled from the teacher's softmax, weight 1/k each"),
    Method("within_m_kd", "Within-M KD", GREEN, needs_teacher=True, target="teacher",
           sparse_target=True, within_kept=True,
           description="stingy target, student softmax renormalised over the kept set M"),
    Method("dafl_kd", "DAFL (data-free KD)", GREY, needs_teacher=True, target="teacher",
           data_free=True, layers=("cifar",), description="data-free KD (DAFL); sparse when method.k or "
           "method.ratio is set"),
)}


def method(name: str) -> Method:
    """The registry entry of ``name``; ValueError naming every method otherwise."""
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {name!r}") from None


def names(layer: str | None = None, **fields) -> tuple[str, ...]:
    """Method names in registry order, optionally of one layer and with given field values,
    e.g. ``names("simulations", sparse_target=True)``."""
    return tuple(m.name for m in METHODS.values()
                 if (layer is None or layer in m.layers)
                 and all(getattr(m, key) == value for key, value in fields.items()))


@dataclass(frozen=True)
class MethodSettings(Settings):
    """A method and its numbers: a recipe's ``[method]`` table, one student of a sweep, one
    model of a simulation. ``k`` (kept classes) wins over ``ratio`` (k = keep_count(r, K));
    0 means not set. ``nasty_weight`` is the Nasty Teacher objective's w."""

    name: str = setting("scratch", Choice(tuple(METHODS)))
    temperature: float = setting(4.0, TEMPERATURE)
    alpha: float = setting(0.9, ALPHA)
    ratio: float = setting(0.0, ZeroOr(RATIO))
    k: int = setting(0, ZeroOr(KEPT_COUNT))
    nasty_weight: float = setting(0.04, Number(0))

    def check(self) -> None:
        entry = METHODS[self.name]
        if entry.sparse_target and not (self.k or self.ratio):
            raise ValueError(f"method {self.name!r} needs method.k >= 1 or method.ratio in "
                             f"(0, 1], got k={self.k}, ratio={self.ratio}")
        if entry.data_free and self.alpha != 1:
            raise ValueError(f"method {self.name!r} trains without labels, so its loss is all "
                             f"distillation: method.alpha must be 1, got {self.alpha}")

    @property
    def entry(self) -> Method:
        return METHODS[self.name]
