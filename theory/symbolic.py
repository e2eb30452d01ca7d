"""What every derivation shares: the statuses a record can have and the sympy checks.

The statuses state a derivation's scope (:mod:`stingy.theory.derivations` lists them all);
:func:`is_zero` and :func:`taylor_coefficients` are how an identity or an expansion is
checked symbolically.
"""

from __future__ import annotations

import sympy as sp

PROVED = "proved for all K, k"
CHECKED = "checked numerically"
FAILED = "failed"


def proved_instance(num_classes: int, k: int) -> str:
    """The status of an identity sympy reduced only for K = num_classes, k = k."""
    return f"proved for the instance K={num_classes}, k={k}"


def is_zero(expr) -> bool:
    """True when sympy reduces ``expr`` to 0 (rational cancellation first, then simplify)."""
    return (sp.cancel(sp.together(expr)) == 0 or sp.expand(expr) == 0
            or sp.simplify(expr) == 0)


def taylor_coefficients(expression, eps, order: int) -> list:
    """The first ``order`` Taylor coefficients of ``expression`` in ``eps`` at 0."""
    series = sp.series(expression, eps, 0, order).removeO()
    return [sp.expand(series.coeff(eps, n)) for n in range(order)]
