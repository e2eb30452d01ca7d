"""The ``stingy`` command: one sub-command per job, each defined by its layer.

Every layer module listed in ``LAYERS`` exposes ``register(subparsers)``, which adds its
sub-commands with ``set_defaults(run=callable)``; the callable takes the parsed arguments and
returns an exit code (None means 0). Bad input (``ValueError``, a missing file, a usage error)
prints one line, ``stingy: error: ...``, and exits with code 2; a training run whose loss
turns non-finite prints one line and exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from stingy.io import Diverged, LockHeld

LAYERS = ["stingy.theory.cli", "stingy.simulations.cli", "stingy.empirical.cli", "stingy.figures.cli"]


class UsageError(Exception):
    """A command-line error; printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stingy",
        description="Why sparse teacher logits make knowledge distillation fail: theory, "
        "simulations, CIFAR experiments and figures.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=OneLineParser)
    subparsers.required = True
    for name in LAYERS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name != name:
                raise
            continue  # a layer that has not landed yet
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        code = args.run(args)
    except (UsageError, ValueError, LockHeld, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, FileExistsError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(message if isinstance(err, UsageError) else f"stingy: error: {message}",
              file=sys.stderr)
        return 2
    except OverflowError as err:  # a finite input too large for the arithmetic it feeds
        print(f"stingy: error: a value is too large to compute with ({err}); use a smaller "
              f"one", file=sys.stderr)
        return 2
    except Diverged as err:  # the run is marked failed; not a usage error
        print(f"stingy: error: {str(err).splitlines()[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stingy: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
