"""Exact identities, bounds and expansions of knowledge distillation under sparse logits.

(The sympy derivations live in stingy.theory.derivations, imported on demand: sympy is slow to load.)
"""

from stingy.theory.approximation import (
    approximation_errors,
    mass_shift_error,
    mass_shift_error_bound,
    paper_mass_shift,
    tv_to_uniform,
    tv_to_uniform_bound,
    tv_worst_case,
    two_level_logits,
)
from stingy.theory.expansion import expansion_terms, logit_gap
from stingy.theory.kept_mass import kept_mass_bounds, kept_mass_expansion
from stingy.theory.operators import (
    kd_loss,
    keep_count,
    kept_mass,
    reverse_logits,
    sparse_target,
    sparsify_logits,
    top_k_mask,
)
from stingy.theory.signal import (
    drive_norm,
    gradient_decomposition,
    signal_norm,
    signal_to_drive,
    signal_to_drive_bound,
    signal_to_drive_exact,
)
from stingy.theory.sparse_target import mass_shift
from stingy.theory.sweep import theory_grid
from stingy.theory.values import theory_report, theory_values

__all__ = [
    "approximation_errors",
    "drive_norm",
    "expansion_terms",
    "gradient_decomposition",
    "kd_loss",
    "keep_count",
    "kept_mass",
    "kept_mass_bounds",
    "kept_mass_expansion",
    "logit_gap",
    "mass_shift",
    "mass_shift_error",
    "mass_shift_error_bound",
    "paper_mass_shift",
    "reverse_logits",
    "signal_norm",
    "signal_to_drive",
    "signal_to_drive_bound",
    "signal_to_drive_exact",
    "sparse_target",
    "sparsify_logits",
    "theory_grid",
    "theory_report",
    "theory_values",
    "top_k_mask",
    "tv_to_uniform",
    "tv_to_uniform_bound",
    "tv_worst_case",
    "two_level_logits",
]
