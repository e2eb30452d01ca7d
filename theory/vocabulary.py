"""T1-T5 at vocabulary scale, from stored top-k rows only (no dense teacher row).

:func:`stored_rows_theory` computes, per stored row (stingy.theory.topk.TopKTeacher) at a
temperature T whose log-partition LSE(z/T) is stored:

* ``kept_mass`` m = sum_M e^{z/T - LSE(z/T)} (T2) and ``tail_mass`` 1 - m;
* the truncation's bias on the target: TV(p~, p) = 1 - m (the tail mass) and ``bias_kl`` =
  KL(p~ || p) = -log m (T1: p~ = p/m on M, so both follow from m alone);
* T3 exactly: ``tv_to_uniform`` TV(p~, U_M), its bound tanh(D_M/4T), the worst case over rows
  with the same k and D_M (``tv_worst_case``: max over j of x(1-x)c/(1+cx), x = j/k,
  c = e^{D_M/T} - 1, the two-level value of T3a at integer j;
  stingy.theory.approximation.tv_worst_case), and ``mass_shift_error``
  max_M |delta(i) - (1-r)/k| with delta(i) = p(i)(1/m - 1) (T1);
* T5: ``signal_to_drive_exact`` = ||p~ - U_M||_2 / sqrt(1/k - 1/K) (the exact gradient-norm
  ratio, stingy.theory.signal), its high-T form ``signal_to_drive`` = sqrt(Var_M(z)) /
  (T sqrt(1 - r)), and ``drive_norm``, ``signal_norm``.

Everything but kept_mass, tail_mass, the bias and mass_shift_error needs only the kept values;
those four need the stored log-partition.

:func:`stored_rows_report` is the library side of ``stingy theory --topk FILE``.

:func:`vocabulary_table` runs this on a synthetic heavy-tailed logit model
(:func:`heavy_tailed_logits`, z = scale * Gumbel noise) for LLM-like settings; the rows are
synthetic, not a language model's.
"""

from __future__ import annotations

import math

import torch

from stingy.theory.approximation import tv_worst_case
from stingy.theory.moments import population_var, value_range
from stingy.theory.signal import exact_ratio_from_kept_target
from stingy.theory.topk import TopKTeacher, load_topk_teacher, topk_teacher
from stingy.theory.validation import check_temperature
from stingy.theory.values import finite_or_none


def heavy_tailed_logits(rows: int, num_classes: int, seed: int, scale: float = 2.0,
                        dtype=torch.float64) -> torch.Tensor:
    """Synthetic heavy-tailed logits: scale * standard Gumbel, i.i.d. (the weights e^{z/T} have
    a Pareto tail of index T/scale, so at T <= scale a few classes hold much of the mass)."""
    generator = torch.Generator().manual_seed(int(seed))
    uniform = torch.rand(rows, num_classes, generator=generator, dtype=dtype)
    uniform = uniform.clamp_min(torch.finfo(dtype).tiny)
    return -scale * torch.log(-torch.log(uniform))


def stored_rows_theory(teacher: TopKTeacher, temperature: float) -> dict:
    """Per-row T1-T5 quantities from stored rows (module docstring), {key: (N,) tensor}.

    kept_mass, tail_mass, bias_kl and mass_shift_error are present only when the log-partition
    at ``temperature`` is stored."""
    values = teacher.values.double().reshape(-1, teacher.k)
    k, num_classes = teacher.k, teacher.num_classes
    ratio = k / num_classes
    scaled = values / temperature
    kept_target = torch.softmax(scaled, dim=-1)
    kept_range = value_range(values)
    variance = population_var(values)
    out = {
        "tv_to_uniform": 0.5 * (kept_target - 1 / k).abs().sum(dim=-1),
        "tv_to_uniform_bound": torch.tanh(kept_range / (4 * temperature)),
        "tv_worst_case": torch.as_tensor(tv_worst_case(k, kept_range.numpy(), temperature),
                                         dtype=values.dtype).reshape(kept_range.shape),
        "signal_norm": (variance / k).sqrt(),
        "drive_norm": torch.full_like(variance, temperature * math.sqrt(max(1 / k - 1 / num_classes,
                                                                            0.0))),
        "signal_to_drive_exact": exact_ratio_from_kept_target(kept_target, num_classes),
        "signal_to_drive": (variance.sqrt() / (temperature * math.sqrt(1 - ratio))
                            if k < num_classes else torch.full_like(variance, math.inf)),
    }
    if any(math.isclose(stored, temperature, rel_tol=1e-9) for stored in teacher.temperatures):
        log_partition = teacher.logsumexp_at(temperature).double().reshape(-1)
        log_m = torch.logsumexp(scaled - log_partition[:, None], dim=-1).clamp_max(0.0)
        m = log_m.exp()
        shift = kept_target * (1 - m)[:, None]  # delta(i) = p(i)(1/m - 1) = p~(i)(1 - m)
        out.update({
            "kept_mass": m,
            "tail_mass": -torch.expm1(log_m),
            "bias_kl": -log_m,
            "mass_shift_error": (shift - (1 - ratio) / k).abs().amax(dim=-1),
        })
    return out


def stored_rows_report(path, temperature: float) -> dict:
    """``stingy theory --topk``'s result: :func:`stored_rows_theory` of the stored top-k teacher
    at ``path`` as ``{"settings", "per_row", "mean"}`` (means over rows; inf written as None)."""
    temperature = check_temperature(temperature, "--temperature")
    teacher = load_topk_teacher(path)
    values = stored_rows_theory(teacher, temperature)
    settings = {"num_classes": teacher.num_classes, "k": teacher.k,
                "ratio": teacher.k / teacher.num_classes, "temperature": temperature,
                "rows": int(teacher.values.reshape(-1, teacher.k).shape[0]),
                "topk": str(path), "log_partition_temperatures": list(teacher.temperatures)}
    per_row = {key: [finite_or_none(float(v)) for v in value] for key, value in values.items()}
    mean = {key: finite_or_none(float(value.mean())) for key, value in values.items()}
    return {"settings": settings, "per_row": per_row, "mean": mean}


def vocabulary_table(class_counts=(32768, 131072), keep_counts=(1, 8, 64, 1024),
                     temperatures=(1.0, 2.0), rows: int = 32, seed: int = 0) -> list[dict]:
    """Means over ``rows`` synthetic heavy-tailed rows (:func:`heavy_tailed_logits`) of the
    stored-row quantities, one dict per (K, k, T); the dense rows are used only to store them."""
    table = []
    for num_classes in class_counts:
        logits = heavy_tailed_logits(rows, num_classes, seed)
        for k in keep_counts:
            stored = topk_teacher(logits, k, temperatures)
            for temperature in temperatures:
                values = stored_rows_theory(stored, temperature)
                table.append({"model": "synthetic", "num_classes": num_classes, "k": k,
                              "temperature": temperature, "rows": rows,
                              **{key: float(v.mean()) for key, v in values.items()}})
    return table
