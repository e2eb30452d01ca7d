"""stingy: why sparse teacher logits make knowledge distillation fail.

The command line lives in :mod:`stingy.cli`; shared file helpers in :mod:`stingy.io`.
The three layers are the top-level packages ``theory``, ``simulations`` and ``empirical``;
``figures`` draws from their result files.
"""

__version__ = "0.1.0"
