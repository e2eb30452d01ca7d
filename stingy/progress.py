"""When progress bars show: only on a terminal, and never after ``stingy --quiet``.

Every ``tqdm`` bar passes ``disable=bar_disabled(asked)``: True when the caller did not ask
for one or the command line said ``--quiet`` (:data:`QUIET`, set by :mod:`stingy.cli`), else
None, which tqdm reads as "show only when the output is a terminal".
"""

from __future__ import annotations

QUIET = False


def bar_disabled(asked: bool = True) -> bool | None:
    return True if QUIET or not asked else None
