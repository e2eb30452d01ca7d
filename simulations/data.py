"""A synthetic C-class task whose Bayes posterior is known exactly, with controlled label noise.

Generative model (seeded, see :func:`make_task`):

    superclass centres  c_g ~ N(0, superclass_spread^2 I_L),  g = 1..G
    class means          mu_y = c_{g(y)} + e_y,  e_y ~ N(0, member_spread^2 I_L)
    latent               h | y ~ N(mu_y, I_L)
    input                x = P h,   P: D x L with N(0, 1/L) entries (D <= L, full row rank)

so x | y ~ N(P mu_y, S) with the shared covariance S = P P^T. With a uniform class prior the
clean posterior is softmax-linear in x (linear discriminant analysis):

    log p(y | x) = w_y . x + b_y - logsumexp_c(w_c . x + b_c),
    w_y = S^{-1} P mu_y,   b_y = -(1/2) mu_y^T P^T S^{-1} P mu_y.

Classes in one superclass are close (their means differ by member_spread, superclasses by
superclass_spread), which gives the teacher's posterior dark knowledge.

Label noise is a row-stochastic transition matrix N[c, y~] = p(noisy y~ | clean c):
``symmetric`` keeps the label with probability 1 - rate and otherwise draws uniformly among the
other C - 1 classes; ``superclass`` draws uniformly among the other members of the clean
class's superclass. The noisy-label posterior is exact too: p(y~ | x) = sum_c p(c | x) N[c, y~].
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NOISE_KINDS = ("symmetric", "superclass")


@dataclass(frozen=True)
class Task:
    """Class means, projection and the exact posterior's weights (float64)."""

    class_means: torch.Tensor  # [C, L]
    superclass: torch.Tensor  # [C] superclass index of each class
    projection: torch.Tensor  # [D, L]
    posterior_weight: torch.Tensor  # [D, C]
    posterior_bias: torch.Tensor  # [C]

    @property
    def num_classes(self) -> int:
        return self.class_means.shape[0]

    @property
    def input_dim(self) -> int:
        return self.projection.shape[0]


def make_task(num_classes: int, num_superclasses: int, latent_dim: int, input_dim: int,
              superclass_spread: float, member_spread: float, seed: int) -> Task:
    """The Gaussian task described in the module docstring, drawn from ``seed``."""
    if num_classes < 2:
        raise ValueError(f"num_classes must be an integer >= 2, got {num_classes}")
    if num_superclasses < 1 or num_classes % num_superclasses:
        raise ValueError(f"num_superclasses must divide num_classes={num_classes}, "
                         f"got {num_superclasses}")
    if not 1 <= input_dim <= latent_dim:
        raise ValueError(f"input_dim must be in [1, latent_dim={latent_dim}], got {input_dim}")
    generator = torch.Generator().manual_seed(seed)

    def normal(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    superclass = torch.arange(num_classes) // (num_classes // num_superclasses)
    centres = superclass_spread * normal(num_superclasses, latent_dim)
    class_means = centres[superclass] + member_spread * normal(num_classes, latent_dim)
    projection = normal(input_dim, latent_dim) / math.sqrt(latent_dim)
    projected_means = class_means @ projection.T  # [C, D]
    covariance = projection @ projection.T
    posterior_weight = torch.linalg.solve(covariance, projected_means.T)  # [D, C]
    posterior_bias = -0.5 * (projected_means * posterior_weight.T).sum(dim=1)
    return Task(class_means, superclass, projection, posterior_weight, posterior_bias)


def sample(task: Task, num_examples: int, generator: torch.Generator):
    """Draw (x [n, D] float64, clean labels [n]) with a uniform class prior."""
    labels = torch.randint(task.num_classes, (num_examples,), generator=generator)
    latent = task.class_means[labels] + torch.randn(
        num_examples, task.class_means.shape[1], generator=generator, dtype=torch.float64)
    return latent @ task.projection.T, labels


def clean_log_posterior(task: Task, inputs: torch.Tensor) -> torch.Tensor:
    """log p(y | x), exact (module docstring), float64 [n, C]."""
    return torch.log_softmax(inputs.double() @ task.posterior_weight + task.posterior_bias, dim=-1)


def noise_transition(task: Task, rate: float, kind: str) -> torch.Tensor:
    """N[c, y~] = p(noisy label y~ | clean c); the off-diagonal mass of each row is ``rate``."""
    if kind not in NOISE_KINDS:
        raise ValueError(f"noise_kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    if not 0 <= rate < 1:
        raise ValueError(f"noise rate must be a number in [0, 1), got {rate!r}")
    num_classes = task.num_classes
    if kind == "symmetric":
        others = ~torch.eye(num_classes, dtype=torch.bool)
    else:
        others = (task.superclass[:, None] == task.superclass[None, :]) & ~torch.eye(
            num_classes, dtype=torch.bool)
        if rate > 0 and int(others.sum(1).min()) == 0:
            raise ValueError("noise_kind superclass needs superclasses of at least 2 classes")
    transition = others.double() * (rate / others.sum(1, keepdim=True).clamp_min(1))
    return transition + torch.diag(torch.full((num_classes,), 1 - rate, dtype=torch.float64))


def noisy_labels(labels: torch.Tensor, transition: torch.Tensor,
                 generator: torch.Generator) -> torch.Tensor:
    """Draw y~ ~ N[y, :] for each clean label y."""
    return torch.multinomial(transition[labels], 1, generator=generator).squeeze(1)


def noisy_log_posterior(clean_log_probs: torch.Tensor, transition: torch.Tensor) -> torch.Tensor:
    """log p(y~ | x) = log sum_c p(c | x) N[c, y~], exact (float64).

    Computed as l_max + log(exp(l - l_max) @ N) per example (one matmul); entries where that
    comes near float64's underflow (below e^-700 of the largest term) are recomputed with a
    log-sum-exp.
    """
    clean_log_probs = clean_log_probs.double()
    top = clean_log_probs.amax(dim=-1, keepdim=True)
    result = top + ((clean_log_probs - top).exp() @ transition).log()
    rows = (~(result > top - 700)).any(dim=-1).nonzero().squeeze(1)
    if len(rows):
        result[rows] = torch.logsumexp(clean_log_probs[rows, :, None] + transition.log()[None],
                                       dim=1)
    return result
