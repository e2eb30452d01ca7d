"""Synthetic-task simulations: :func:`run_sweep` trains many small students on a Gaussian task
with an exact Bayes posterior and checks the theory's predictions (``stingy simulate``)."""

from stingy.simulations.runner import run_sweep

__all__ = ["run_sweep"]
