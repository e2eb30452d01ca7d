"""The docstring examples run as doctests (so ``python -m pytest -q`` runs them), and every
public function of the API carries at least one."""

import doctest
import importlib

import pytest

import stingy

MODULES = ["stingy", "stingy.theory.operators", "stingy.theory.topk"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


@pytest.mark.parametrize("name", stingy.__all__)
def test_every_public_name_has_an_example(name):
    assert ">>>" in (getattr(stingy, name).__doc__ or ""), f"{name} has no example"
