"""The ``stingy`` command: one sub-command per job, each defined by its layer's CLI module.

Every module in ``LAYERS`` exposes ``register(subparsers, common)``, which adds its
sub-commands (with ``parents=[common]``, the options every command shares) and
``set_defaults(run=callable)``; the callable takes the parsed arguments and returns an exit
code (None means 0). CLI modules only parse and print: the work is a library function
(``stingy.simulations.run_sweep``, ``stingy.theory.values.theory_report``,
``stingy.pipeline.reproduce``, ...), imported inside the callable, so that building the
parser loads no torch and ``stingy --help`` answers at once. A flag that a command always needs
is ``required=True`` in a "required arguments" group; one needed only in some mode says so in
its help, and its absence is one line naming the flag.

``stingy`` alone prints the commands, one line each, to stderr and exits with code 2.

Every command writes under ``runs/<command>`` unless told otherwise (``--out``). Progress bars
show only when stderr is a terminal, and never with ``--quiet`` (stingy.progress). Bad input
(``ValueError``, a missing file, a usage error) prints one line, ``stingy: error: ...``, and
exits with code 2; a closed output pipe (``stingy theory ... | head -1``) ends quietly.
A training run whose loss turns non-finite prints one line and exits with code 1.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from stingy import __version__, progress
from stingy.io import Diverged, LockHeld

LAYERS = ["stingy.theory.cli", "stingy.simulations.cli", "stingy.empirical.cli",
          "stingy.pipeline_cli", "stingy.figures.cli", "stingy.benchmarks.cli"]


class UsageError(Exception):
    """A command-line error; printed as one line, exit code 2."""


class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a usage error as a single line instead of usage + message."""

    def error(self, message: str):  # noqa: D401 - argparse API
        raise UsageError(f"{self.prog}: error: {message}")


def common_options() -> argparse.ArgumentParser:
    """The options every sub-command accepts."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quiet", action="store_true",
                        help="no progress bars (they show only on a terminal anyway)")
    return common


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="stingy",
        description="Why sparse teacher logits make knowledge distillation fail: theory, "
        "simulations, CIFAR experiments and figures.")
    parser.add_argument("--version", action="version", version=f"stingy {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=OneLineParser)
    subparsers.required = True
    common = common_options()
    for name in LAYERS:
        importlib.import_module(name).register(subparsers, common)
    return parser


def command_list(parser: argparse.ArgumentParser) -> str:
    """Usage, then each command and its one-line summary, one line each."""
    commands = parser._subparsers._group_actions[0]._choices_actions  # add_parser(help=...)
    width = max(len(command.dest) for command in commands)
    lines = [f"  {command.dest:<{width}}  {command.help}" for command in commands]
    return "\n".join([parser.format_usage().strip(), "", "commands:", *lines, "",
                      f"`{parser.prog} COMMAND --help` shows a command's options"])


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    if not (sys.argv[1:] if argv is None else argv):
        print(command_list(parser), file=sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        progress.QUIET = args.quiet
        code = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`| head -1`): stop quietly; point stdout at devnull so the
        # interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (UsageError, ValueError, LockHeld, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, FileExistsError) as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(message if isinstance(err, UsageError) else f"stingy: error: {message}",
              file=sys.stderr)
        return 2
    except OSError as err:  # permissions, a full disk, a closed stream: the machine's refusal
        where = f" ({err.filename})" if getattr(err, "filename", None) else ""
        print(f"stingy: error: {err.strerror or type(err).__name__}{where}", file=sys.stderr)
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
