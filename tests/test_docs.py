"""README.md and docs/*.md: every relative link points at a file that exists (and, for a
``#anchor`` into a Markdown file, at one of its headings, by GitHub's slug rule), and every
```python block that shows ``>>>`` prompts runs as a doctest."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 250

FENCE = re.compile(r"^(```|~~~)")
PYTHON_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str):
    """(line number, line) for every line outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower-cased, with everything but
    letters, digits, underscores, hyphens and spaces removed, and each space made a hyphen."""
    text = INLINE_CODE.sub(lambda match: match.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link renders as its text
    text = re.sub(r"[*]|(?<!\w)_+|_+(?!\w)", "", text)       # emphasis markers
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; repeated slugs get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def links(path: Path):
    """(line number, target) of every Markdown link and image outside code."""
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            yield number, match.group(1)


def broken_links(path: Path) -> list[str]:
    """One message per relative link of ``path`` whose file or heading does not exist."""
    problems = []
    for number, target in links(path):
        if SCHEME.match(target) or target.startswith("//"):
            continue  # http:, https:, mailto: ...: not checked here
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.name}:{number}: {target}"
        if not linked.exists():
            problems.append(f"{where}: no file {linked}")
        elif anchor and linked.suffix.lower() == ".md" and anchor not in anchors(linked):
            problems.append(f"{where}: no heading #{anchor} in {linked.name}")
    return problems


def doctest_blocks(path: Path):
    """(line number, code) of every ```python block of ``path`` that has a >>> prompt."""
    text = path.read_text(encoding="utf-8")
    for match in PYTHON_BLOCK.finditer(text):
        if ">>>" in match.group(1):
            yield text.count("\n", 0, match.start(1)), match.group(1)


def run_doctest(code: str, name: str, filename: str, lineno: int) -> tuple[int, str]:
    """Runs ``code`` as one doctest in fresh globals; (failures, the runner's report)."""
    test = doctest.DocTestParser().get_doctest(code, {"__name__": "__docs__"}, name, filename,
                                               lineno)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    result = runner.run(test, out=report.append, clear_globs=True)
    return result.failed, "".join(report)


BLOCKS = [(path, lineno, code) for path in DOCS for lineno, code in doctest_blocks(path)]


def test_the_docs_exist():
    assert (ROOT / "docs").is_dir() and len(DOCS) > 1


@pytest.mark.parametrize("path", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_points_at_an_existing_file_and_heading(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


@pytest.mark.parametrize("path,lineno,code", BLOCKS,
                         ids=[f"{path.relative_to(ROOT).as_posix()}:{lineno + 1}"
                              for path, lineno, _ in BLOCKS])
def test_python_examples_with_prompts_run_as_doctests(path, lineno, code):
    failed, report = run_doctest(code, f"{path.name}:{lineno + 1}", str(path), lineno)
    assert failed == 0, report


def test_the_readme_api_example_is_a_checked_doctest_and_the_readme_stays_short():
    readme = ROOT / "README.md"
    assert any("from stingy import StingyKDLoss" in code for _, code in doctest_blocks(readme))
    lines = len(readme.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


# The checkers themselves, on small synthetic files: they must be able to fail.

def test_github_slugs():
    assert github_slug("Tail-bucket KD: theory") == "tail-bucket-kd-theory"
    assert github_slug("`stingy.kd_loss_topk`") == "stingykd_loss_topk"
    assert github_slug("The stingy KD loss, forward + backward") == \
        "the-stingy-kd-loss-forward--backward"
    assert github_slug("GPU profile `gpu-10min` (prepared)") == "gpu-profile-gpu-10min-prepared"
    assert github_slug("T1-T5") == "t1-t5"


def test_link_checker_finds_a_missing_file_and_a_missing_heading(tmp_path):
    (tmp_path / "other.md").write_text("# Title\n\n## A section\n\n## A section\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Page\n\n"
        "[fine](other.md) [fine too](other.md#a-section) [repeated](other.md#a-section-1)\n"
        "[self](#page) [web](https://example.com/missing.md) `[in code](nowhere.md)`\n"
        "```\n[in a fence](nowhere.md)\n```\n"
        "[gone](missing.md) and [no heading](other.md#no-such-heading)\n"
        "![image](picture.png) [bad self](#nothing)\n")
    problems = broken_links(page)
    assert len(problems) == 4, problems
    assert any("missing.md" in p and "no file" in p for p in problems)
    assert any("#no-such-heading" in p for p in problems)
    assert any("picture.png" in p for p in problems)
    assert any("#nothing" in p for p in problems)
    (tmp_path / "picture.png").write_bytes(b"")
    assert len(broken_links(page)) == 3


def test_doctest_runner_reports_a_wrong_example(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```python\n>>> 1 + 1\n3\n```\n\n```python\nprint('no prompt')\n```\n")
    blocks = list(doctest_blocks(page))
    assert len(blocks) == 1
    lineno, code = blocks[0]
    failed, report = run_doctest(code, "page.md", str(page), lineno)
    assert failed == 1 and "Expected:\n    3\nGot:\n    2" in report
    assert run_doctest(">>> 1 + 1\n2\n", "ok", "ok.md", 0)[0] == 0
