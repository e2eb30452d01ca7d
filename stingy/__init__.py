"""stingy: why sparse teacher logits make knowledge distillation fail.

The public API, for use in your own training loop::

    from stingy import StingyKDLoss, kd_loss, sparsify_logits, sparse_target, kept_mass
    from stingy import keep_count, reverse_logits
    from stingy import kd_loss_topk          # KD from stored top-k rows (stingy.theory.topk)

(they live in :mod:`stingy.theory.operators` and are imported on first use, so that
``import stingy`` stays light). The design card's folders are installed under this one
namespace: ``stingy.theory``, ``stingy.simulations``, ``stingy.empirical``,
``stingy.figures`` and ``stingy.benchmarks``. The command line lives in :mod:`stingy.cli`,
the whole study (`stingy reproduce`) in :mod:`stingy.pipeline`; shared file helpers in
:mod:`stingy.io`.
"""

__version__ = "0.1.0"

__all__ = ["StingyKDLoss", "kd_loss", "keep_count", "kept_mass", "reverse_logits",
           "sparse_target", "sparsify_logits", "kd_loss_topk"]


def __getattr__(name):
    if name == "kd_loss_topk":  # KD from stored top-k rows (stingy.theory.topk)
        from stingy.theory.topk import kd_loss_topk

        return kd_loss_topk
    if name in __all__:
        from stingy.theory import operators

        return getattr(operators, name)
    raise AttributeError(f"module 'stingy' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *__all__])
