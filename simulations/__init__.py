"""Synthetic-task simulations: :func:`run_sweep` trains many small students on a Gaussian task
with an exact Bayes posterior and checks the theory's predictions (``stingy simulate``).

``run_sweep`` is imported on first use, so that loading one module of the package (the command
line's ``stingy.simulations.cli``) does not load torch.
"""

__all__ = ["run_sweep"]


def __getattr__(name):
    if name == "run_sweep":
        from stingy.simulations.runner import run_sweep

        return run_sweep
    raise AttributeError(f"module 'stingy.simulations' has no attribute {name!r}")
