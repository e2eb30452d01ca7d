"""Every T1-T5 derivation, run symbolically (sympy) or numerically, as a record with a scope.

Each ``derive_*`` function returns ``{"id", "statement", "status", "detail", "latex"}``. The
status states the scope:

- "proved for all K, k": sympy reduces the identity (or solves the optimum) with K and k
  symbolic. Sums over M, Mc or all K classes enter either as sympy ``Sum`` objects with a
  symbolic upper limit, or through the joint moments mu_ij = mean_A z^i s^j of the uniform law
  on the set A (any finite set): then k and K never appear in the algebra at all.
- "proved for the instance K=.., k=..": sympy reduces it for those sizes only.
- "checked numerically": tested on the random and adversarial logits the detail lists.
- "failed": the check did not hold (or the derivation raised).

The detail says how the proof or the check was done (the evidence). :func:`run_all` runs them
all (a few seconds); :func:`write_latex` writes statements, statuses and details as LaTeX.
The statuses and the sympy checks every derivation uses are in :mod:`stingy.theory.symbolic`.
"""

from __future__ import annotations

import itertools
import math

import sympy as sp
import torch

from stingy.io import write_text
from stingy.theory.symbolic import CHECKED, FAILED, PROVED, is_zero, taylor_coefficients
from stingy.theory.tail_bucket import derive_tail_bucket_expansion


def _record(statement_id, statement, ok, detail, latex, status_if_ok=PROVED):
    return {"id": statement_id, "statement": statement, "status": status_if_ok if ok else FAILED,
            "detail": detail, "latex": latex}


def _random_logits(rows, num_classes, scale=3.0, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, num_classes, generator=generator, dtype=torch.float64)


# Generic finite sets: a sum over M (k terms), Mc or all K classes, with a symbolic size.
INDEX = sp.Idx("i")
Z, S = sp.IndexedBase("z"), sp.IndexedBase("s")


def _set_sum(term, size):
    """sum_{i=1}^{size} term(i): a sympy Sum with a symbolic size (any number of classes)."""
    return sp.Sum(term, (INDEX, 1, size))


class Moments:
    """Joint moments mu_ij = mean_A z^i s^j of the uniform law on a finite set A, as symbols.

    ``mgf(a, b)`` = mean_A e^{a z + b s} truncated at total degree ``order``; ``central(poly)``
    is mean_A of a polynomial in (z - zbar_A, s - sbar_A), written in the mu_ij by linearity.
    Nothing here depends on |A|: identities reduced with these symbols hold for every K and k.
    """

    def __init__(self, name: str, order: int = 4, joint: bool = True):
        self.order, self.joint = order, joint
        self.mu = {(i, j): sp.Symbol(f"mu{name}_{i}{j}", real=True)
                   for i in range(order + 1) for j in range(order + 1 - i)
                   if (i + j) > 0 and (joint or i == 0)}
        self.mu[0, 0] = sp.Integer(1)

    def mgf(self, a, b):
        return sum(a**i * b**j * m / (sp.factorial(i) * sp.factorial(j))
                   for (i, j), m in self.mu.items())

    def mean(self, polynomial, z, s):
        """mean_A of a polynomial in the placeholders z, s (linearity: z^i s^j -> mu_ij)."""
        poly = sp.Poly(sp.expand(polynomial), z, s)
        return sum(c * self.mu[i, j] for (i, j), c in poly.terms())

    def central(self, make, z, s):
        """mean_A of make(z - zbar, s - sbar)."""
        return sp.expand(self.mean(make(z - self.mu[1, 0] if self.joint else z,
                                        s - self.mu[0, 1]), z, s))


_PLACEHOLDER_Z, _PLACEHOLDER_S = sp.symbols("zeta sigma", real=True)


def _central(moments, make):
    return moments.central(make, _PLACEHOLDER_Z, _PLACEHOLDER_S)


# ---------------------------------------------------------------- T1
def derive_t1_sparse_target():
    """p~(i) = p(i)/m on M: the partition function cancels (all K, k)."""
    weight, kept_sum, dropped_sum = sp.symbols("w S_M S_Mc", positive=True)
    p = weight / (kept_sum + dropped_sum)
    m = kept_sum / (kept_sum + dropped_sum)
    sparse = weight / kept_sum
    ok = is_zero(sparse - p / m) and is_zero(sparse - p - p * (1 / m - 1))
    return _record("T1a", "p~(i) = p(i)/m on M and 0 off M; delta(i) = p(i)(1/m - 1) on M, "
                   "-p(i) off M", ok,
                   "With w = e^{z(i)/T}, S_M = sum_M e^{z/T} and S_Mc = sum_Mc e^{z/T} as positive "
                   "symbols (any K, k): p(i) = w/(S_M+S_Mc), m = S_M/(S_M+S_Mc), p~(i) = w/S_M; "
                   "p~(i) - p(i)/m and p~(i) - p(i) - p(i)(1/m-1) reduce to 0. Off M p~(i) = 0 by "
                   "definition, so delta(i) = -p(i).",
                   r"\tilde p(i) = \frac{p(i)}{m}\ (i\in M),\quad \tilde p(i)=0\ (i\notin M),\quad "
                   r"\delta(i) = p(i)\left(\tfrac1m - 1\right)\ (i\in M),\quad \delta(i) = -p(i)"
                   r"\ (i\notin M)")


def derive_t1_argmax_kept():
    """argmax p~ = argmax z: checked on 2000 random rows and on all-tied rows."""
    from stingy.theory.operators import sparse_target

    logits = _random_logits(2000, 10)
    tied = torch.zeros(5, 10, dtype=torch.float64)
    ok = True
    for rows in (logits, tied):
        for k in (1, 2, 5, 10):
            ok &= bool((sparse_target(rows, k, 4.0).argmax(-1) == rows.argmax(-1)).all())
    return _record("T1b", "The sparse target keeps the teacher's argmax (top-1 unchanged)", ok,
                   "M contains the largest logit and p~ is increasing in z on M. Checked on 2000 "
                   "random rows (K=10) and all-tied rows for k in {1, 2, 5, 10}, T = 4 (ties: "
                   "lowest index, as torch.argmax).", r"\arg\max_i \tilde p(i) = \arg\max_i z(i)",
                   CHECKED)


# ---------------------------------------------------------------- T2
def derive_t2_upper_bound_attained():
    """At two-level logits (kept at max z, dropped at min z) m equals the upper bound."""
    num_classes, k, logit_range, temperature = sp.symbols("K k D T", positive=True)
    m_two_level = k * sp.exp(logit_range / temperature) / (
        k * sp.exp(logit_range / temperature) + (num_classes - k))
    bound = 1 / (1 + (num_classes - k) / k * sp.exp(-logit_range / temperature))
    ok = is_zero(m_two_level - bound)
    return _record("T2a", "the upper bound m <= 1/(1 + ((K-k)/k) e^{-D/T}) is attained: two-level "
                   "logits (kept at max z, dropped at min z) give exactly that m", ok,
                   "Upper: m = 1/(1 + S_Mc/S_M), S_Mc/S_M >= (K-k)e^{min z/T}/(k e^{max z/T}); "
                   "with K, k, D, T symbolic the two-level m reduces to the bound. Lower: the k "
                   "largest p(i) have mean m/k >= 1/K (the inequalities are checked numerically "
                   "in T2b).",
                   r"\frac{k}{K} \le m \le \frac{1}{1 + \frac{K-k}{k} e^{-D/T}}")


def derive_t2_bounds_and_monotonicity():
    """Numerical: the bounds hold, m is non-increasing in T and non-decreasing in k."""
    from stingy.theory.kept_mass import kept_mass_bounds
    from stingy.theory.operators import kept_mass

    logits = _random_logits(200, 10, scale=5.0)
    temperatures = [0.05, 0.3, 1.0, 4.0, 20.0, 100.0]
    ok = True
    for k in range(1, 11):
        masses = [kept_mass(logits, k, t) for t in temperatures]
        for t, m in zip(temperatures, masses):
            lower, upper = kept_mass_bounds(logits, k, t)
            ok &= bool((m >= lower - 1e-12).all() and (m <= upper + 1e-12).all())
        ok &= all(bool((a >= b - 1e-12).all()) for a, b in itertools.pairwise(masses))
    for t in temperatures:
        by_k = [kept_mass(logits, k, t) for k in range(1, 11)]
        ok &= all(bool((b >= a - 1e-12).all()) for a, b in itertools.pairwise(by_k))
    return _record("T2b", "m in [k/K, upper]; m non-increasing in T and non-decreasing in k", ok,
                   "200 random rows (K=10, logits N(0, 25)), every k, T in "
                   f"{temperatures}.", r"\partial_T m \le 0,\quad m_{k+1} \ge m_k", CHECKED)


def derive_t2_beta_derivative():
    """dm/dbeta = m(1 - m)(E_p[z|M] - E_p[z|Mc]) (all K, k: sums with symbolic sizes)."""
    k, num_classes = sp.symbols("k K", positive=True, integer=True)
    beta = sp.symbols("beta", positive=True)
    dropped = sp.IndexedBase("y")
    kept_sum = _set_sum(sp.exp(beta * Z[INDEX]), k)
    dropped_sum = _set_sum(sp.exp(beta * dropped[INDEX]), num_classes - k)
    m = kept_sum / (kept_sum + dropped_sum)
    mean_kept = _set_sum(Z[INDEX] * sp.exp(beta * Z[INDEX]), k) / kept_sum
    mean_dropped = _set_sum(dropped[INDEX] * sp.exp(beta * dropped[INDEX]),
                            num_classes - k) / dropped_sum
    derivative = sp.diff(m, beta)  # differentiates under the finite sums
    sums = {term: sp.Symbol(f"Sigma{n}", positive=True)
            for n, term in enumerate(sorted((derivative - m * (1 - m) * (mean_kept - mean_dropped))
                                            .atoms(sp.Sum), key=str))}
    ok = is_zero((derivative - m * (1 - m) * (mean_kept - mean_dropped)).xreplace(sums))
    return _record("T2c", "m is non-increasing in T: dm/dbeta = m(1-m)(E_p[z|M] - E_p[z|Mc]) >= 0",
                   ok, "sympy differentiates m = S_M/(S_M + S_Mc) under the sums S_M = "
                   "sum_{i=1}^k e^{beta z_i}, S_Mc = sum_{i=1}^{K-k} e^{beta y_i} (k, K symbolic); "
                   "with each resulting sum as a symbol the identity reduces to 0. Non-negative "
                   "because every z in M is >= every z in Mc, so E_p[z|M] >= E_p[z|Mc].",
                   r"\frac{dm}{d\beta} = m(1-m)\left(\mathbb E_p[z\mid M] - "
                   r"\mathbb E_p[z\mid M^c]\right) \ge 0,\quad \beta = 1/T")


def derive_t2_expansion():
    """m = r(1 + (zbar_M - zbar)/T) + O(1/T^2) (all K, k: moments of M and of all K)."""
    eps, ratio = sp.symbols("epsilon r", positive=True)
    kept, every = Moments("M", 3, joint=False), Moments("K", 3, joint=False)
    # m = sum_M e^{eps z} / sum_K e^{eps z} = r mean_M e^{eps z} / mean_K e^{eps z}
    m = ratio * kept.mgf(0, eps) / every.mgf(0, eps)
    coefficients = taylor_coefficients(m, eps, 2)
    ok = is_zero(coefficients[0] - ratio)
    ok &= is_zero(coefficients[1] - ratio * (kept.mu[0, 1] - every.mu[0, 1]))
    return _record("T2d", "m -> r as T -> inf, m = r(1 + (zbar_M - zbar)/T) + O(1/T^2)", ok,
                   "m = r mean_M e^{z/T} / mean_K e^{z/T} with r = k/K; with the moments of z "
                   "over M and over all K classes as symbols (any K, k) the Taylor coefficients "
                   "in eps = 1/T are r and r(zbar_M - zbar).",
                   r"m = r\left(1 + \frac{\bar z_M - \bar z}{T}\right) + O(T^{-2})")


# ---------------------------------------------------------------- T3
def derive_t3_exact_worst_case():
    """max TV(p~, U_M) over kept logits of range D_M = max_j of the two-level value (all k)."""
    top, rest, w_i, d, j, k = sp.symbols("S_A S_B w d j k", positive=True)
    # p~(A) = S_A/(S_A + S_B); z(i) enters S_A or S_B as w = e^{z(i)/T}, dw/dz(i) = w/T
    share = top / (top + rest)
    inside = sp.diff(share.subs(top, top + w_i), w_i).subs(w_i, 0)  # i in A
    outside = sp.diff(share.subs(rest, rest + w_i), w_i).subs(w_i, 0)  # i not in A
    ok = is_zero(inside - rest / (top + rest) ** 2) and is_zero(outside + top / (top + rest) ** 2)
    value = j * sp.exp(d) / (j * sp.exp(d) + k - j) - j / k
    two = sp.simplify(value.subs({j: 1, k: 2}))
    ok &= is_zero((two - sp.tanh(d / 2) / 2).rewrite(sp.exp))
    t = sp.tanh(d / 4)
    ok &= is_zero(sp.simplify((sp.tanh(d / 2) / 2 - t / (1 + t**2)).rewrite(sp.exp)))
    ok &= is_zero(t - t / (1 + t**2) - t**3 / (1 + t**2))
    return _record("T3a", "max TV(p~, U_M) over kept logits of range D_M is W_k = max_{j=1..k-1} "
                   "[j e^d/(j e^d + k - j) - j/k], d = D_M/T; k = 2: W_2 = tanh(D_M/2T)/2 < "
                   "tanh(D_M/4T) for D_M > 0", ok,
                   "TV = max_A (p~(A) - |A|/k). Symbolic (any k): d p~(A)/d w_i = S_B/S^2 > 0 for "
                   "i in A and -S_A/S^2 < 0 otherwise (w_i = e^{z(i)/T}), so for each A the max "
                   "over the box of range D_M is the two-level vector (A on top), of range "
                   "exactly D_M; the two-level value at k = 2, j = 1 reduces to tanh(d/2)/2 = "
                   "t/(1+t^2) with t = tanh(d/4), and tanh(d/4) - t/(1+t^2) = t^3/(1+t^2) > 0.",
                   r"\max_{\mathrm{range}(z_M)=D_M}\mathrm{TV} = \max_{1\le j<k}\left[\frac{j e^d}"
                   r"{j e^d + k - j} - \frac jk\right],\quad W_2 = \tfrac12\tanh\frac{D_M}{2T}")


def derive_t3_two_level_tv():
    """The two-level TV x(1-x)c/(1+cx) is at most tanh(d/4), attained only at x = 1/(1+e^{d/2})."""
    j, k, d = sp.symbols("j k d", positive=True)
    x = sp.symbols("x", positive=True)
    c = sp.exp(d) - 1
    top_mass = j * sp.exp(d) / (j * sp.exp(d) + (k - j))
    tv_two_level = top_mass - j / k
    ok = is_zero((tv_two_level - x * (1 - x) * c / (1 + c * x)).subs(j, x * k))
    f = x * (1 - x) * c / (1 + c * x)
    best = 1 / (1 + sp.exp(d / 2))
    ok &= is_zero(sp.together(sp.diff(f, x).subs(x, best)))
    ok &= is_zero(sp.simplify(f.subs(x, best) - sp.tanh(d / 4)).rewrite(sp.exp))
    second = sp.diff(f, x, 2)  # strictly concave: -2c(1+c)/(1+cx)^3 < 0
    ok &= is_zero(second + 2 * c * (1 + c) / (1 + c * x) ** 3)
    return _record("T3b", "TV(p~, U_M) <= tanh(D_M/(4T)), attained only at the isolated ranges "
                   "where k/(1+e^{D_M/(2T)}) is an integer", ok,
                   "With j, k, d symbolic: the two-level TV is f(x) = x(1-x)c/(1+cx), x = j/k, "
                   "c = e^d - 1; f'' = -2c(1+c)/(1+cx)^3 < 0 (strictly concave), f'(x*) = 0 at "
                   "x* = 1/(1+e^{d/2}) and f(x*) = tanh(d/4). So W_k <= tanh(d/4) with equality "
                   "iff k x* is an integer j in [1, k/2], i.e. d = 2 log(k/j - 1).",
                   r"\mathrm{TV}(\tilde p, U_M) \le \tanh\frac{D_M}{4T},\ "
                   r"= \text{iff}\ \frac{k}{1+e^{D_M/2T}}\in\mathbb Z")


def derive_t3_tv_numeric():
    """TV <= W_k <= tanh on random logits; W_k attained by two-level logits; tanh at its ranges."""
    from stingy.theory.approximation import (
        tanh_bound_attaining_range,
        tv_to_uniform,
        tv_to_uniform_bound,
        tv_worst_case,
        two_level_logits,
    )
    from stingy.theory.moments import value_range

    logits = _random_logits(2000, 10, scale=6.0)
    ok, slack = True, math.inf
    for k in (1, 2, 3, 5, 10):
        kept_range = value_range(logits.sort(-1, descending=True).values[:, :k]).numpy()
        for t in (0.1, 1.0, 4.0, 20.0):
            tv = tv_to_uniform(logits, k, t).numpy()
            worst = tv_worst_case(k, kept_range, t)
            slack = min(slack, float((worst - tv).min()))
            ok &= bool((worst <= tv_to_uniform_bound(logits, k, t).numpy() + 1e-12).all())
    ok &= slack >= -1e-12
    gaps = []
    for k, d in ((4, 0.7), (6, 3.0), (10, 5.0), (2, 2.5)):
        best = max(float(tv_to_uniform(two_level_logits(k, top, d, 10), k, 1.0))
                   for top in range(1, k))
        gaps.append(abs(float(tv_worst_case(k, d, 1.0)) - best))
    for k, j in ((4, 1), (6, 1), (6, 2), (10, 3)):
        d = tanh_bound_attaining_range(k, j)
        gaps.append(abs(float(tv_to_uniform(two_level_logits(k, j, d, 10), k, 1.0))
                        - math.tanh(d / 4)))
    ok &= max(gaps) < 1e-12
    return _record("T3c", "TV <= W_k <= tanh(D_M/4T) on random logits; W_k equals the best "
                   "two-level TV; tanh attained at d = 2 log(k/j - 1)", ok,
                   "2000 rows N(0, 36), K=10, k in {1,2,3,5,10}, T in {0.1,1,4,20}: "
                   f"min(W_k - TV) = {slack:.2e}; two-level logits with (k, d) in (4,0.7), (6,3), "
                   "(10,5), (2,2.5) and tanh-attaining (k, j) in (4,1),(6,1),(6,2),(10,3): max "
                   f"|difference| = {max(gaps):.1e}.",
                   r"\mathrm{TV} \le W_k \le \tanh(d/4)", CHECKED)


def derive_t3_mass_shift_identity():
    """delta(i) - (1-r)/k = (p~(i) - 1/k)(1 - m) + (r - m)/k (all K, k)."""
    target, m, r, k = sp.symbols("ptilde m r k", positive=True)
    delta = target * (1 - m)  # p~ - p with p = m p~ on M (T1)
    ok = is_zero(delta - (1 - r) / k - ((target - 1 / k) * (1 - m) + (r - m) / k))
    return _record("T3d", "delta(i) - (1-r)/k = (p~(i) - 1/k)(1-m) + (r-m)/k, so "
                   "max_M |delta(i) - (1-r)/k| <= (1-r) e_M + (m_upper - r)/k", ok,
                   "Identity with p~, m, r, k symbolic (delta = p~(1 - m) on M by T1); the bound "
                   "uses m in [r, m_upper] (T2) and |p~(i) - 1/k| <= e_M from p~(i) in "
                   "[1/(1+(k-1)e^{D_M/T}), 1/(1+(k-1)e^{-D_M/T})] (checked numerically in T3e). "
                   "The identity is symbolic; the bound rests on that numerical step, so the "
                   "statement is checked numerically.",
                   r"\max_{i\in M}\left|\delta(i) - \tfrac{1-r}{k}\right| \le (1-r)e_M + "
                   r"\frac{m_{\rm up} - r}{k}", CHECKED)


def derive_t3_error_bound_numeric():
    """The T3d bound holds numerically on random and adversarial logits."""
    from stingy.theory.approximation import mass_shift_error, mass_shift_error_bound

    random_rows = _random_logits(500, 10, scale=6.0)
    spikes = torch.zeros(10, 10, dtype=torch.float64)
    spikes[:, 0] = torch.linspace(0.0, 40.0, 10, dtype=torch.float64)
    worst = math.inf
    for rows in (random_rows, spikes):
        for k in (1, 2, 3, 5, 9, 10):
            for t in (0.1, 1.0, 4.0, 20.0, 200.0):
                slack = mass_shift_error_bound(rows, k, t) - mass_shift_error(rows, k, t)
                worst = min(worst, float(slack.min()))
    return _record("T3e", "mass-shift error bound holds on random and adversarial logits",
                   worst >= -1e-12,
                   "500 rows N(0, 36) and one-spike rows (spike 0..40), K=10, k in "
                   f"{{1,2,3,5,9,10}}, T in {{0.1,...,200}}; min(bound - error) = {worst:.2e}.",
                   r"\text{bound} - \text{error} \ge 0", CHECKED)


# ---------------------------------------------------------------- T4
def _kl_from_cumulants(eps):
    """KL(p~||q) - log(K/k) = eps L_a - L - eps L_b + L_K at (eps, 0), in moment symbols."""
    a, b = sp.symbols("a b", real=True)
    kept, every = Moments("M", 4), Moments("K", 4, joint=False)
    log_mgf = sp.log(kept.mgf(a, b))
    at = {a: eps, b: 0}
    kl = (eps * sp.diff(log_mgf, a).subs(at) - log_mgf.subs(at)
          - eps * sp.diff(log_mgf, b).subs(at) + sp.log(every.mgf(0, eps)))
    return kl, kept, every


def _kl_is_the_cumulant_form() -> bool:
    """KL(p~||q) = log(K/k) + eps L_a - L - eps L_b + L_K, with sums of symbolic size."""
    eps, a, b = sp.symbols("epsilon a b", positive=True)
    k, num_classes = sp.symbols("k K", positive=True, integer=True)
    kept_sum = _set_sum(sp.exp(eps * Z[INDEX]), k)
    every_sum = _set_sum(sp.exp(eps * S[INDEX]), num_classes)
    # E_p~[z] and E_p~[s] by linearity of the finite sum over M
    mean_z = _set_sum(Z[INDEX] * sp.exp(eps * Z[INDEX]), k) / kept_sum
    mean_s = _set_sum(S[INDEX] * sp.exp(eps * Z[INDEX]), k) / kept_sum
    # KL = sum_M p~ (eps z - log S_M - eps s + log S_K), sum_M p~ = 1
    kl = eps * mean_z - sp.log(kept_sum) - eps * mean_s + sp.log(every_sum)
    log_mgf = sp.log(_set_sum(sp.exp(a * Z[INDEX] + b * S[INDEX]), k) / k)
    at = {a: eps, b: 0}
    cumulant_form = (sp.log(num_classes / k) + eps * sp.diff(log_mgf, a).subs(at)
                     - log_mgf.subs(at) - eps * sp.diff(log_mgf, b).subs(at)
                     + sp.log(every_sum / num_classes))
    difference = sp.expand_log(sp.simplify(kl - cumulant_form), force=True)
    return is_zero(difference)


def derive_t4_expansion():
    """T^2 KL = T^2 log(K/k) - T(1-r)(sbar_M - sbar_Mc) + order 1 + order 1/T (all K, k)."""
    eps = sp.symbols("epsilon", positive=True)
    ok = _kl_is_the_cumulant_form()
    kl, kept, every = _kl_from_cumulants(eps)
    coefficients = taylor_coefficients(kl, eps, 4)
    sbar_m, sbar = kept.mu[0, 1], every.mu[0, 1]
    expected = [
        0,
        sbar - sbar_m,  # = -(1-r)(sbar_M - sbar_Mc)
        (_central(kept, lambda z, s: z**2) / 2 - _central(kept, lambda z, s: z * s)
         + _central(every, lambda z, s: s**2) / 2),
        (_central(kept, lambda z, s: z**3) / 3 - _central(kept, lambda z, s: z**2 * s) / 2
         + _central(every, lambda z, s: s**3) / 6),
    ]
    ok &= all(is_zero(c - e) for c, e in zip(coefficients, expected))
    ratio, sbar_dropped = sp.symbols("r sbar_Mc", real=True)
    ok &= is_zero((ratio * sbar_m + (1 - ratio) * sbar_dropped - sbar_m)
                   + (1 - ratio) * (sbar_m - sbar_dropped))
    return _record("T4a", "T^2 KL(p~||q) = T^2 log(K/k) - T(1-r)(sbar_M - sbar_Mc) + "
                   "(1/2)[Var_M(z) - 2Cov_M(z,s) + Var_K(s)] + (1/T)[k3_M(z)/3 - k_M(z,z,s)/2 + "
                   "k3_K(s)/6] + O(1/T^2)", ok,
                   "Two steps, both with k, K symbolic. (1) With sums of symbolic size, sympy "
                   "reduces KL - [log(K/k) + eps L_a - L - eps L_b + L_K] to 0, where L(a,b) = "
                   "log mean_M e^{az+bs} and L_K(b) = log mean_K e^{bs} (eps = 1/T). (2) With the "
                   "joint moments of (z, s) over M and of s over all K as symbols, the Taylor "
                   "coefficients of that form in eps (orders 0..3) equal the central-moment "
                   "formula (k3 = third central moment, k_M(z,z,s) = mean_M (z-zbar)^2(s-sbar)); "
                   "sbar - sbar_M = -(1-r)(sbar_M - sbar_Mc) because sbar = r sbar_M + "
                   "(1-r) sbar_Mc.",
                   r"T^2\,\mathrm{KL}(\tilde p\|q) = T^2\log\frac Kk"
                   r" - T(1-r)(\bar s_M - \bar s_{M^c})"
                   r" + \tfrac12\left[\mathrm{Var}_M z - 2\mathrm{Cov}_M(z,s)"
                   r" + \mathrm{Var}_K s\right]"
                   r" + \frac1T\left[\tfrac13\kappa_3^M(z) - \tfrac12\kappa^M(z,z,s)"
                   r" + \tfrac16\kappa_3^K(s)\right] + O(T^{-2})")


def derive_t4_remainder_numeric():
    """T * remainder converges to the order-1/T coefficient, with error O(1/T)."""
    from stingy.theory.expansion import expansion_terms

    worst_ratio, details = 0.0, []
    for num_classes, k, seed in ((10, 2, 1), (10, 7, 2), (100, 10, 3), (7, 3, 4)):
        teacher = _random_logits(1, num_classes, seed=seed)[0]
        student = _random_logits(1, num_classes, scale=1.0, seed=seed + 100)[0]
        errors = []
        for temperature in (100.0, 1000.0):
            terms = expansion_terms(teacher, student, k, temperature)
            errors.append(abs(float((terms["remainder"] - terms["order_inv_t"]) * temperature)))
        coefficient = float(expansion_terms(teacher, student, k, 1000.0)["order_inv_t"] * 1000.0)
        # an O(1/T) error shrinks 10x from T = 100 to 1000
        worst_ratio = max(worst_ratio, errors[1] / errors[0])
        details.append(f"(K={num_classes}, k={k}): c3 = {coefficient:.4f}, "
                       f"|T R - c3| = {errors[0]:.1e} -> {errors[1]:.1e}")
    return _record("T4b", "T * remainder -> c3 (the order-1/T coefficient) for general K, k",
                   worst_ratio < 0.2,
                   "remainder = exact - orders T^2, T, 1; at T = 100 and 1000: "
                   + "; ".join(details) + f"; worst shrink factor {worst_ratio:.3f} (O(1/T) "
                   "gives 0.1).", r"T\,R(T) \to c_3,\quad |T R(T) - c_3| = O(T^{-1})", CHECKED)


def derive_t4_special_cases():
    """k = K: Hinton's Var_K(z - s)/2; k = 1: the series of -log q(top) (all K)."""
    every = Moments("K", 3)
    hinton = (_central(every, lambda z, s: z**2) / 2 - _central(every, lambda z, s: z * s)
              + _central(every, lambda z, s: s**2) / 2
              - _central(every, lambda z, s: (z - s) ** 2) / 2)
    ok = is_zero(hinton)
    # k = 1: M = {top}, a one-point set: every central moment over M is 0; the T4 series must
    # equal the series of -log q(top) = -eps s_top + log K + L_K(eps) term by term.
    eps = sp.symbols("epsilon", positive=True)
    kl, kept, all_s = _kl_from_cumulants(eps)
    s_top, z_top = sp.symbols("s_top z_top", real=True)
    one_point = {mu: z_top**i * s_top**j for (i, j), mu in kept.mu.items() if (i, j) != (0, 0)}
    cross_entropy = -eps * s_top + sp.log(all_s.mgf(0, eps))
    ok &= all(is_zero(a - b) for a, b in zip(taylor_coefficients(kl.xreplace(one_point), eps, 4),
                                              taylor_coefficients(cross_entropy, eps, 4)))
    return _record("T4c", "k = K: order-1 term = (1/2)Var_K(z - s) (Hinton), no drive; k = 1: "
                   "the T4 series is that of T^2(-log q(top)) through order 1/T", ok,
                   "Moment symbols (any K): Var(z)/2 - Cov(z,s) + Var(s)/2 - Var(z-s)/2 reduces "
                   "to 0, and (1-r) = 0 at k = K. k = 1: putting the moments of a one-point M "
                   "(mu_ij = z_top^i s_top^j) into the cumulant form of T4a gives Taylor "
                   "coefficients equal, through eps^3, to those of -log q(top) = -eps s_top + "
                   "log mean_K e^{eps s} + log K.",
                   r"k=K:\ \tfrac12\mathrm{Var}_K(z-s);\quad"
                   r" k=1:\ T^2\mathrm{KL} = -T^2\log q_{\rm top}")


def derive_t4_paper_last_line():
    """-(1/k) sum_M log q = log K - (1-r)(sbar_M - sbar_Mc)/T + Var_K(s)/(2T^2) + O(T^-3)."""
    eps = sp.symbols("epsilon", positive=True)
    kept, every = Moments("M", 3), Moments("K", 3, joint=False)
    # log q(i) = eps s(i) - log K - L_K(eps); mean over M of s is mu^M_01
    paper = -(eps * kept.mu[0, 1] - sp.log(every.mgf(0, eps)))
    coefficients = taylor_coefficients(paper, eps, 3)
    expected = [0, every.mu[0, 1] - kept.mu[0, 1], _central(every, lambda z, s: s**2) / 2]
    ok = all(is_zero(c - e) for c, e in zip(coefficients, expected))
    ok &= not any(sym.name.startswith("muM_") and sym.name != "muM_01"
                  for c in coefficients for sym in sp.sympify(c).free_symbols)
    return _record("T4d", "the paper's last line keeps the order-T drive and the student spread "
                   "and drops the teacher-dependent matching (1/2)Var_M(z) - Cov_M(z, s)", ok,
                   "With moment symbols (any K, k), -(1/k) sum_M log q(i) - log K = -eps sbar_M + "
                   "L_K(eps) has Taylor coefficients 0, sbar - sbar_M, Var_K(s)/2; no moment of z "
                   "appears.",
                   r"-\tfrac1k\sum_{i\in M}\log q_i = \log K"
                   r" - \frac{(1-r)(\bar s_M - \bar s_{M^c})}{T}"
                   r" + \frac{\mathrm{Var}_K s}{2T^2} + O(T^{-3})")


# ---------------------------------------------------------------- T5
def derive_t5_decomposition():
    """grad = T(q - U_K) + T(U_K - U_M) + T(U_M - p~); drive ⟂ signal; drive norm (all K, k)."""
    num_classes, k, temperature = sp.symbols("K k T", positive=True)
    kept_target_sum = sp.symbols("P", positive=True)  # sum_M p~(i) = 1
    drive_kept, drive_dropped = 1 / num_classes - 1 / k, 1 / num_classes
    # <drive, signal> = sum_M (1/K - 1/k)(1/k - p~(i)) = (1/K - 1/k)(k/k - P)
    inner = drive_kept * (k / k - kept_target_sum)
    ok = is_zero(inner.subs(kept_target_sum, 1))
    squared = k * drive_kept**2 + (num_classes - k) * drive_dropped**2
    ok &= is_zero(temperature**2 * squared - temperature**2 * (1 / k - 1 / num_classes))
    ok &= is_zero(drive_kept + (1 - k / num_classes) / k)
    # grad_s of KL: class j against the rest R of sum_K e^{eps s} (R free of s_j), and the
    # target's weight P_j on class j (0 off M) against the rest of sum_M p~ = 1
    eps, s_j, rest, target_j = sp.symbols("epsilon s_j R ptilde_j", positive=True)
    lse = sp.log(sp.exp(eps * s_j) + rest)
    q_j = sp.exp(eps * s_j) / (sp.exp(eps * s_j) + rest)
    ok &= is_zero(sp.diff(lse, s_j) - eps * q_j)
    # KL = sum_M p~ log p~ - eps sum_M p~ s + LSE (sum_M p~ = 1); d/ds_j times T^2 = T(q_j - p~_j)
    kl_part = -eps * target_j * s_j + lse
    ok &= is_zero(sp.diff(kl_part, s_j) / eps**2 - (q_j - target_j) / eps)
    return _record("T5a", "grad_s T^2 KL = T(q - U_K) + T(U_K - U_M) + T(U_M - p~): student part, "
                   "drive and teacher signal; drive and signal are orthogonal at every s; "
                   "|drive| = T sqrt(1/k - 1/K)", ok,
                   "grad_s T^2 KL = T(q - p~) because d LSE(s/T)/ds_j = q_j/T and sum_M p~ = 1. "
                   "With K, k, T symbolic: <U_K - U_M, U_M - p~> = (1/K - 1/k) sum_M (1/k - p~(i)) "
                   "= 0; |U_K - U_M|^2 = k(1/K-1/k)^2 + (K-k)/K^2 = 1/k - 1/K; on M the drive is "
                   "-T(1-r)/k, the gradient of the order-T term of T4.",
                   r"\nabla_s T^2\mathrm{KL} = T(q - U_K) + T(U_K - U_M) + T(U_M - \tilde p),"
                   r"\quad \langle U_K - U_M, U_M - \tilde p\rangle = 0")


def derive_t5_exact_ratio():
    """signal/drive = ||p~ - U_M|| / sqrt(1/k - 1/K), closed form and asymptote (all K, k)."""
    k, num_classes = sp.symbols("k K", positive=True)
    weight, first, second = sp.symbols("w A_1 A_2", positive=True)
    # sum_M (w_i/A_1 - 1/k)^2 by linearity: w^2 -> A_2 = sum w^2, w -> A_1, 1 -> k
    per_term = sp.Poly(sp.expand((weight / first - 1 / k) ** 2), weight)
    power_sums = {2: second, 1: first, 0: k}
    squared_distance = sum(c * power_sums[n] for (n,), c in per_term.terms())
    closed = (k * second / first**2 - 1) / k  # (M(2eps)/M(eps)^2 - 1)/k, M = mean_M e^{eps z}
    ok = is_zero(squared_distance - closed)
    eps = sp.symbols("epsilon", positive=True)
    kept = Moments("M", 4, joint=False)
    growth = kept.mgf(0, 2 * eps) / kept.mgf(0, eps) ** 2 - 1
    coefficients = taylor_coefficients(growth, eps, 4)
    ok &= is_zero(coefficients[0]) and is_zero(coefficients[1])
    ok &= is_zero(coefficients[2] - _central(kept, lambda z, s: s**2))
    ok &= is_zero(coefficients[3] - _central(kept, lambda z, s: s**3))
    ratio_squared = closed / (1 / k - 1 / num_classes)
    ok &= is_zero(ratio_squared - (k * second / first**2 - 1) / (1 - k / num_classes))
    return _record("T5b", "signal/drive = ||p~ - U_M||_2 / sqrt(1/k - 1/K), independent of s; "
                   "squared = (exp(L(2/T) - 2L(1/T)) - 1)/(1-r) = Var_M(z)/(T^2(1-r)) + "
                   "k3_M(z)/(T^3(1-r)) + O(T^-4)", ok,
                   "From T5a: |T(U_M - p~)| / |T(U_K - U_M)|. With k, K symbolic and A_n = "
                   "sum_M e^{n z/T}: sum_M (p~ - 1/k)^2 = A_2/A_1^2 - 1/k = (M(2/T)/M(1/T)^2 - 1)/k "
                   "(M = mean_M e^{z/T}); with moment symbols the Taylor coefficients of "
                   "M(2e)/M(e)^2 - 1 are 0, 0, Var_M z, k3_M z. So the 1/T form sqrt(Var_M z)/"
                   "(T sqrt(1-r)) is the leading term only.",
                   r"\frac{\|\text{signal}\|}{\|\text{drive}\|} = \frac{\|\tilde p - U_M\|_2}"
                   r"{\sqrt{1/k - 1/K}} = \frac{\sqrt{\mathrm{Var}_M z}}{T\sqrt{1-r}}"
                   r"\,(1 + O(T^{-1}))")


def derive_t5_free_minimiser():
    """inf_s KL(p~ || q) = 0, approached only as q -> p~ (dropped logits -> -inf), not attained."""
    kept_sum, c, eps, count = sp.symbols("A c epsilon n", positive=True)
    # s = z on M, s = -c on Mc (n = K - k dropped classes): KL = log((A + n e^{-eps c}) / A)
    kl = sp.log((kept_sum + count * sp.exp(-eps * c)) / kept_sum)
    ok = sp.limit(kl, c, sp.oo) == 0
    dropped_gradient = sp.exp(-eps * c) / (kept_sum + count * sp.exp(-eps * c))  # q(i), i in Mc
    ok &= sp.limit(dropped_gradient, c, sp.oo) == 0
    ok &= _free_student_keeps_ranking()
    return _record("T5c", "over free student logits inf KL(p~||q) = 0, approached only as q -> p~ "
                   "(ranking inside M kept, dropped logits -> -inf); the dropped-class gradient "
                   "T q(i) -> 0 on the way", ok,
                   "KL >= 0 with equality iff q = p~ (Gibbs), impossible since q > 0 on Mc. "
                   "Symbolic (A, n = K - k, eps, c): with s = z on M and -c on Mc, KL = "
                   "log((A + n e^{-eps c})/A) -> 0 and q(i) on Mc -> 0 as c -> inf. Numerically "
                   "(8 rows, K=10, k=3, T=4, 400 Adam steps from random s): the student's order inside "
                   "M equals the teacher's. The limits are symbolic; the ranking part rests on that "
                   "run, so the statement is checked numerically.",
                   r"\inf_s \mathrm{KL}(\tilde p\|q) = 0,\ q\to\tilde p,\ s_{M^c}\to-\infty",
                   CHECKED)


def _free_student_keeps_ranking() -> bool:
    """Minimise KL(p~||softmax(s/T)) over free s from a random start: the order on M is z's."""
    from stingy.theory.operators import sparse_target, top_k_mask

    teacher = _random_logits(8, 10, seed=7)
    target = sparse_target(teacher, 3, 4.0)
    student = _random_logits(8, 10, seed=8).requires_grad_(True)
    optimiser = torch.optim.Adam([student], lr=0.3)
    for _ in range(400):
        log_q = torch.log_softmax(student / 4.0, -1)
        loss = -(target * log_q).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    kept = top_k_mask(teacher, 3)
    same_order = all(torch.equal(teacher[r][kept[r]].argsort(), student[r][kept[r]].argsort())
                     for r in range(8))
    return same_order and bool(student[~kept].amax() < student[kept].amin())


def derive_t5_sharp_variance():
    """Var of k points in a range D is at most D^2 floor(k/2)ceil(k/2)/k^2 (all k)."""
    j, k = sp.symbols("j k", positive=True)
    first, second, value = sp.symbols("P_1 P_2 v", real=True)
    # Var = P_2/k - (P_1/k)^2 with P_n = sum z^n; one coordinate v enters P_1 and P_2
    variance = (second + value**2) / k - ((first + value) / k) ** 2
    ok = is_zero(sp.diff(variance, value, 2) - 2 * (k - 1) / k**2)  # convex in each value
    two_level = j * (k - j) / k**2  # variance / D^2 with j points at D and k - j at 0
    ok &= is_zero(sp.diff(two_level, j, 2) + 2 / k**2)  # concave in j, symmetric about k/2
    ok &= is_zero(two_level.subs(j, (k - 1) / 2) - (k**2 - 1) / (4 * k**2))
    ok &= is_zero(two_level.subs(j, k / 2) - sp.Rational(1, 4))
    return _record("T5d", "the 1/T asymptote of signal/drive is <= D_M/(2T sqrt(1-r)) "
                   "(Popoviciu); for odd k <= D_M sqrt((k^2-1)/(4k^2))/(T sqrt(1-r))", ok,
                   "k symbolic: d^2 Var/dz(i)^2 = 2(k-1)/k^2 >= 0, so Var (convex in each value) "
                   "is maximal over the box [0, D]^k at a vertex: j values at D, k-j at 0, "
                   "Var = D^2 j(k-j)/k^2, a concave quadratic in j symmetric about k/2, so the "
                   "integer maximum is at j = floor(k/2): 1/4 for even k, (k^2-1)/(4k^2) for odd "
                   "k. Bounds the asymptote, not the exact ratio.",
                   r"\mathrm{Var}_M z \le D_M^2\,\frac{\lfloor k/2\rfloor\lceil k/2\rceil}{k^2}")


def derive_t5_autograd():
    """The T5a parts and the exact ratio against torch.autograd and a direct NumPy computation."""
    import numpy as np

    from stingy.theory.signal import gradient_decomposition, signal_to_drive_exact

    worst = 0.0
    for num_classes, k, t in ((10, 2, 20.0), (100, 10, 20.0), (7, 3, 4.0), (10, 1, 2.0)):
        teacher = _random_logits(1, num_classes, seed=num_classes)[0]
        student = _random_logits(1, num_classes, scale=1.0, seed=k)[0].requires_grad_(True)
        z, order = teacher.numpy(), np.argsort(-teacher.numpy(), kind="stable")
        kept = np.zeros(num_classes, bool)
        kept[order[:k]] = True
        target = np.where(kept, np.exp((z - z[kept].max()) / t), 0.0)
        target /= target.sum()
        log_q = torch.log_softmax(student / t, 0)
        loss = -t**2 * (torch.from_numpy(target) * log_q).sum()
        (gradient,) = torch.autograd.grad(loss, student)
        parts = gradient_decomposition(teacher, student.detach(), k, t)
        drive = t * (1 / num_classes - kept / k)
        signal = t * (kept / k - target)
        ratio = np.linalg.norm(target[kept] - 1 / k) / math.sqrt(1 / k - 1 / num_classes)
        worst = max(worst,
                    float((parts["student"] + parts["drive"] + parts["signal"] - gradient)
                          .abs().max()),
                    float(np.abs(parts["drive"].numpy() - drive).max()),
                    float(np.abs(parts["signal"].numpy() - signal).max()),
                    abs(float(drive @ signal)),
                    abs(float(signal_to_drive_exact(teacher, k, t)) - ratio))
    return _record("T5e", "the T5a parts, their orthogonality and the exact ratio match autograd "
                   "and a direct NumPy computation", worst < 1e-10,
                   "(K, k, T) in (10,2,20), (100,10,20), (7,3,4), (10,1,2): max |difference| = "
                   f"{worst:.1e} (gradient of -T^2 sum p~ log q by autograd; parts and ratio from "
                   "NumPy).", r"\text{autograd} = \text{closed form}", CHECKED)


def derive_t6_gap_growth_uniform():
    """Gradient flow on the sparse target, p~ = U_M, symmetric start: the gap solves
    k T e^{g/T} + (K - k) g = T K t / k + C, so g(t) - T log(K t / k^2) -> 0."""
    big_k, k, temperature, time, constant, gap = sp.symbols("K k T t C g", positive=True)
    grows = sp.exp(gap / temperature)
    partition = k * grows + big_k - k  # Z e^{-b/T}: kept logits a, dropped b, g = a - b
    kept_q, dropped_q = grows / partition, 1 / partition
    # ds/dt = -T (q - p~): da/dt = -T (q_M - 1/k), db/dt = -T q_D
    rate = -temperature * (kept_q - 1 / k) + temperature * dropped_q
    ok = is_zero(rate - temperature * big_k / (k * partition))
    implicit = k * temperature * grows + (big_k - k) * gap
    ok &= is_zero(sp.diff(implicit, gap) * rate - temperature * big_k / k)
    # h = g - T log(K t / k^2): on the solution, e^{h/T} - 1 = k (C - (K - k) g) / (T K t)
    excess = sp.exp(gap / temperature) * k**2 / (big_k * time) - 1
    on_solution = sp.solve(sp.Eq(implicit, temperature * big_k * time / k + constant), constant)[0]
    ok &= is_zero(excess - k * (on_solution - (big_k - k) * gap) / (temperature * big_k * time))
    # numerically, from the LambertW solution at K = 100, k = 10, T = 20, C = F(0)
    values = {big_k: 100, k: 10, temperature: 20}
    solution = sp.solve(sp.Eq(implicit, temperature * big_k * time / k
                              + implicit.subs(gap, 0)), gap)[0].subs(values)
    late = [float(solution.subs(time, t_value) - 20 * sp.log(100 * t_value / 100))
            for t_value in (1e4, 1e6, 1e8)]
    ok &= abs(late[-1]) < abs(late[0]) and abs(late[-1]) < 1e-3
    return _record("T6a", "gradient flow on T^2 KL(U_M || softmax(s/T)) from equal kept and equal "
                   "dropped logits: the kept-vs-dropped gap g solves k T e^{g/T} + (K-k) g = "
                   "T K t / k + C, so g(t) = T log(K t / k^2) + o(1): it grows like T log t, "
                   "without bound", ok,
                   "K, k, T, t, C symbolic. By symmetry the k kept logits stay equal (a) and the "
                   "K-k dropped ones stay equal (b); dg/dt = T K / (k (k e^{g/T} + K - k)), "
                   "and the implicit solution's derivative matches it. With h = g - T log(K t / "
                   "k^2): e^{h/T} - 1 = k (C - (K-k) g)/(T K t), and g <= T log((T K t/k + C)/"
                   "(k T)) = O(log t), so h -> 0. Free logits, or a linear student on orthogonal "
                   f"inputs. The LambertW solution at K=100, k=10, T=20 gives h = {late[0]:.1e}, "
                   f"{late[1]:.1e}, {late[2]:.1e} at t = 1e4, 1e6, 1e8.",
                   r"kTe^{g/T} + (K-k)g = \frac{TK}{k}t + C,\ g(t) = T\log\frac{Kt}{k^2} + o(1)")


def derive_t6_gap_growth_general():
    """Free logits, any teacher on M: the gap grows like T log t and the ranking inside M
    converges to the teacher's (gradient descent, numerically)."""
    from stingy.theory.operators import sparse_target

    teacher = _random_logits(4, 10, seed=11)
    temperature, k, step = 4.0, 3, 0.5
    target = sparse_target(teacher, k, temperature)
    kept = target > 0
    student = _random_logits(4, 10, scale=1.0, seed=12)
    snapshots, checkpoints = {}, (200, 2_000, 20_000)
    for count in range(1, checkpoints[-1] + 1):
        student -= step * temperature * (torch.softmax(student / temperature, -1) - target)
        if count in checkpoints:
            inside = torch.softmax(student.masked_fill(~kept, -math.inf) / temperature, -1)
            gap = (student.masked_fill(~kept, 0).sum(-1) / k
                   - student.masked_fill(kept, 0).sum(-1) / (10 - k))
            snapshots[count] = (gap, float((inside - target).abs().sum(-1).max() / 2))
    slope = (snapshots[20_000][0] - snapshots[2_000][0]) / math.log(10) / temperature
    ranking = all(torch.equal(teacher[r][kept[r]].argsort(), student[r][kept[r]].argsort())
                  for r in range(4))
    shrink = snapshots[200][1] / snapshots[20_000][1]
    ok = ranking and bool((slope - 1).abs().max() < 0.02) and shrink > 50
    return _record("T6b", "free logits, any teacher on M, gradient descent: the gap grows like "
                   "T log t and the student's distribution inside M converges to p~ (its ranking "
                   "is the teacher's)", ok,
                   "4 teachers N(0, 9), K=10, k=3, T=4, step 0.5 on T^2 KL from random logits: "
                   f"d gap / (T d log t) between 2e3 and 2e4 steps = "
                   f"{float(slope.min()):.4f}..{float(slope.max()):.4f}; the total variation "
                   f"inside M falls {shrink:.0f}-fold from 2e2 to 2e4 steps (about 1/t: the "
                   "drive on M, of size q on Mc ~ 1/t, is opposed by an O(1) restoring force); "
                   "order inside M equals the teacher's. Checked numerically for these draws; for "
                   "a student whose weights are shared across inputs this is a conjecture "
                   "(docs/theory.md).",
                   r"g(t) \sim T\log t,\ \mathrm{TV}(q|_M, \tilde p) = O(1/t)", CHECKED)


DERIVATIONS = [
    derive_t1_sparse_target, derive_t1_argmax_kept,
    derive_t2_upper_bound_attained, derive_t2_bounds_and_monotonicity, derive_t2_beta_derivative,
    derive_t2_expansion,
    derive_t3_exact_worst_case, derive_t3_two_level_tv, derive_t3_tv_numeric,
    derive_t3_mass_shift_identity, derive_t3_error_bound_numeric,
    derive_t4_expansion, derive_t4_remainder_numeric, derive_t4_special_cases,
    derive_t4_paper_last_line,
    derive_t5_decomposition, derive_t5_exact_ratio, derive_t5_free_minimiser,
    derive_t5_sharp_variance, derive_t5_autograd,
    derive_t6_gap_growth_uniform, derive_t6_gap_growth_general,
    derive_tail_bucket_expansion,
]


def run_all() -> list[dict]:
    """Run every derivation; a derivation that raises is recorded as failed with the error."""
    records = []
    for derive in DERIVATIONS:
        try:
            records.append(derive())
        except Exception as err:  # noqa: BLE001 - a crash is a failed derivation, reported
            records.append({"id": derive.__name__, "statement": derive.__doc__.splitlines()[0],
                            "status": FAILED, "detail": f"{type(err).__name__}: {err}",
                            "latex": ""})
    return records


_LATEX_SPECIALS = str.maketrans({
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}",
})


def _escape(text: str) -> str:
    """Plain text made safe for LaTeX."""
    return text.translate(_LATEX_SPECIALS)


def to_latex(records: list[dict]) -> str:
    """A standalone LaTeX document: one subsection per statement (formula, status, detail)."""
    lines = [r"\documentclass{article}", r"\usepackage{amsmath,amssymb}",
             r"\title{Sparse-logit KD: statements T1--T5}", r"\begin{document}", r"\maketitle"]
    for record in records:
        lines += [rf"\subsection*{{{record['id']}: {_escape(record['statement'])}}}"]
        if record["latex"]:
            lines += [r"\[", record["latex"], r"\]"]
        lines += [rf"\textbf{{Status:}} {record['status']}.\\", _escape(record["detail"]), ""]
    lines += [r"\end{document}", ""]
    return "\n".join(lines)


def write_latex(path, records: list[dict] | None = None):
    """Write :func:`to_latex` of ``records`` (default: a fresh :func:`run_all`) atomically."""
    return write_text(path, to_latex(run_all() if records is None else records))
