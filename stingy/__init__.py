"""stingy: why sparse teacher logits make knowledge distillation fail.

The design card's folders are installed under this one namespace: ``stingy.theory``,
``stingy.simulations``, ``stingy.empirical``, ``stingy.figures`` and ``stingy.benchmarks``.
The command line lives in :mod:`stingy.cli`; shared file helpers in :mod:`stingy.io`.
"""

__version__ = "0.1.0"
