"""Exact identities, bounds and expansions of knowledge distillation under sparse logits.

The names below are imported from their modules on first use, so that loading one module of the
package (the command line's ``stingy.theory.cli``) does not load torch. (The sympy derivations
live in stingy.theory.derivations, imported on demand: sympy is slow to load.)
"""

import importlib
import sys
import types

# module -> the names taken from it
_API = {
    "approximation": ("approximation_errors", "mass_shift_error", "mass_shift_error_bound",
                      "paper_mass_shift", "tv_to_uniform", "tv_to_uniform_bound",
                      "tv_worst_case", "two_level_logits"),
    "expansion": ("expansion_terms", "logit_gap"),
    "kept_mass": ("kept_mass_bounds", "kept_mass_expansion"),
    "operators": ("kd_loss", "keep_count", "kept_mass", "reverse_logits", "sparse_target",
                  "sparsify_logits", "top_k_mask"),
    "signal": ("drive_norm", "gradient_decomposition", "signal_norm", "signal_to_drive",
               "signal_to_drive_bound", "signal_to_drive_exact"),
    "sparse_target": ("mass_shift",),
    "sweep": ("theory_grid",),
    "values": ("theory_report", "theory_values"),
}
_SOURCE = {name: module for module, names in _API.items() for name in names}
__all__ = sorted(_SOURCE)


def __getattr__(name):
    if name not in _SOURCE:
        raise AttributeError(f"module 'stingy.theory' has no attribute {name!r}")
    return getattr(importlib.import_module(f"stingy.theory.{_SOURCE[name]}"), name)


def __dir__():
    return sorted([*globals(), *__all__])


class _Package(types.ModuleType):
    """``kept_mass`` and ``sparse_target`` name both a module and an operator: loading the
    module binds its name on the package, which would hide the operator; it stays unbound."""

    def __setattr__(self, name, value):
        if not (name in _SOURCE and isinstance(value, types.ModuleType)):
            super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
