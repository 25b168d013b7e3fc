"""The documentation points only at what exists: README.md, docs/ and every other Markdown file.

README.md is the entry point and docs/ the manual. These tests fail when a Markdown link points at a file or a
heading that was renamed or removed, when the README's layout or "where to change what" table names a path
that does not exist, when a top-level directory is missing from the layout table, or when a docs page is not
reachable from the README.
"""

from __future__ import annotations

import fnmatch
import re
import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[3]
README = REPO / "README.md"
DOCS = REPO / "docs"

FENCE = re.compile(r"^ {0,3}(```|~~~)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
# [label]: target
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:|^//")
GLOB = re.compile(r"[*?\[]")


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------
def git_files(*extra: str, root: Path = REPO) -> set[str]:
    """The repository's files as git lists them (``git ls-files -z`` plus ``extra``), that exist on disk."""
    done = subprocess.run(["git", "ls-files", "-z", *extra], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git ls-files failed in {root}: {done.stderr}"
    return {f for f in done.stdout.split("\0") if f and (root / f).exists()}


@cache
def repo_files() -> frozenset[str]:
    """Tracked files, and new files git does not ignore (so the checks also hold before a commit)."""
    return frozenset(git_files("--cached", "--others", "--exclude-standard"))


def markdown_files() -> list[str]:
    """Every Markdown file of the repository, README.md and docs/*.md included."""
    return sorted(f for f in repo_files() if f.endswith(".md"))


def outside_code(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks, with inline code spans blanked."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, INLINE_CODE.sub(lambda m: " " * len(m.group(0)), line)


def github_slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped except '-' and '_', spaces to '-'."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps only its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in a Markdown file: its headings' slugs (repeats get -1, -2...)."""
    text = path.read_text(encoding="utf-8")
    found: set[str] = set(HTML_ANCHOR.findall(text))
    seen: dict[str, int] = {}
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        heading = None if fenced else HEADING.match(line)
        if heading:
            slug = github_slug(heading.group(2))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, target) of every relative link and image of a Markdown file, code excluded."""
    for number, line in outside_code(path.read_text(encoding="utf-8")):
        targets = [m.group(1) for m in LINK.finditer(line)]
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        for target in targets:
            target = target.strip("<>")
            if not SCHEME.match(target):
                yield number, target


def exists_in(files: set[str] | frozenset[str], rel: str) -> bool:
    """Whether ``rel`` (a file, a directory, or a glob) names at least one of ``files``."""
    rel = rel.strip().rstrip("/")
    if GLOB.search(rel):
        return any(fnmatch.fnmatchcase(f, rel) for f in files)
    return rel in files or any(f.startswith(f"{rel}/") for f in files)


def broken_links(path: Path, root: Path, files: set[str] | frozenset[str]) -> list[str]:
    """The relative links of ``path`` whose file or ``#anchor`` does not exist, one message each."""
    problems = []
    root, path = root.resolve(), path.resolve()
    for number, target in relative_links(path):
        where = f"{path.relative_to(root)}:{number}: {target}"
        file_part, _, fragment = target.partition("#")
        if file_part:
            resolved = (path.parent / unquote(file_part)).resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{where}: points outside the repository")
                continue
            rel = resolved.relative_to(root).as_posix()
            if not exists_in(files, rel):
                problems.append(f"{where}: no such file or directory")
                continue
        else:
            resolved = path
        if fragment:
            if resolved.suffix != ".md" or not resolved.is_file():
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(fragment) not in anchors(resolved):
                problems.append(f"{where}: no heading with anchor #{fragment} in {resolved.relative_to(root)}")
    return problems


def section(text: str, heading: str) -> str:
    """The body of the level-2 section ``## heading`` of a Markdown text (up to the next level-2 heading)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def table_column(text: str, column: str) -> list[str]:
    """The cells of ``column`` (by its header) in the first Markdown table of ``text``."""
    rows = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[cell.strip() for cell in re.split(r"(?<!\\)\|", row.strip("|"))] for row in rows]
    assert len(cells) > 2 and set("".join(cells[1])) <= set("-: "), "no Markdown table"
    index = cells[0].index(column)
    return [row[index] for row in cells[2:]]


def backticked(cells: list[str]) -> list[str]:
    """Every backticked string of some table cells."""
    return [code for cell in cells for code in re.findall(r"`([^`]+)`", cell)]


def readme_section(heading: str) -> str:
    """A level-2 section of README.md."""
    return section(README.read_text(encoding="utf-8"), heading)


# ---------------------------------------------------------------------------------------------------------
# The checker itself
# ---------------------------------------------------------------------------------------------------------
def test_github_slugs() -> None:
    """Anchors follow GitHub's rules, including headings with code, punctuation and dashes."""
    assert github_slug("Performance of the API") == "performance-of-the-api"
    assert github_slug("What `up` does for it") == "what-up-does-for-it"
    assert github_slug("Calling the API: container and Lambda") == "calling-the-api-container-and-lambda"
    assert github_slug("What this covers, and what only Docker users exercise") == (
        "what-this-covers-and-what-only-docker-users-exercise"
    )
    assert github_slug("ML Models and something more Inc. — the MLOps platform") == (
        "ml-models-and-something-more-inc--the-mlops-platform"
    )
    assert github_slug("snake_case and kebab-case") == "snake_case-and-kebab-case"


def test_the_checker_reports_a_renamed_file_and_a_renamed_heading(tmp_path: Path) -> None:
    """A link to a missing file or heading is reported; links in code and external links are not."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## Two words\n\n## Two words\n", encoding="utf-8")
    (tmp_path / "README.md").write_text(
        "\n".join(
            [
                "[ok](docs/page.md) [ok](docs/page.md#two-words) [ok](docs/page.md#two-words-1) [ok](#top)",
                "[ok](docs/) [ok](https://example.com/x.md) `[not a link](gone.md)`",
                "```",
                "[not a link either](gone.md)",
                "```",
                "# Top",
                "[bad](docs/renamed.md) [bad](docs/page.md#renamed) [bad](#nowhere) [bad](../outside.md)",
                "[label]: docs/also-gone.md",
            ]
        ),
        encoding="utf-8",
    )
    files = {"README.md", "docs/page.md"}
    problems = broken_links(tmp_path / "README.md", tmp_path, files)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/renamed.md: no such file or directory",
        "docs/page.md#renamed: no heading with anchor #renamed in docs/page.md",
        "#nowhere: no heading with anchor #nowhere in README.md",
        "../outside.md: points outside the repository",
        "docs/also-gone.md: no such file or directory",
    ]


# ---------------------------------------------------------------------------------------------------------
# (a) Relative links of every Markdown file
# ---------------------------------------------------------------------------------------------------------
def test_the_readme_and_the_docs_pages_are_checked() -> None:
    """The link check below covers README.md and every page of docs/ (so it cannot silently check nothing)."""
    files = markdown_files()
    assert "README.md" in files
    pages = [f for f in files if f.startswith("docs/")]
    assert len(pages) >= 5, pages


@pytest.mark.parametrize("markdown", markdown_files())
def test_relative_links_point_to_existing_files_and_headings(markdown: str) -> None:
    """Every relative link of a Markdown file names an existing file and, with #anchor, an existing heading."""
    problems = broken_links(REPO / markdown, REPO, repo_files())
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_has_a_title_and_links_back_to_the_readme() -> None:
    """Each docs page starts with a level-1 title and links back to README.md."""
    pages = sorted(DOCS.glob("*.md"))
    assert pages
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert text.startswith("# "), f"{page.name} does not start with a level-1 title"
        targets = {target.partition("#")[0] for _, target in relative_links(page)}
        assert "../README.md" in targets, f"{page.name} does not link back to README.md"


def test_the_readme_links_every_docs_page() -> None:
    """Every page of docs/ is reachable from README.md."""
    linked = {target.partition("#")[0] for _, target in relative_links(README)}
    pages = {f"docs/{page.name}" for page in DOCS.glob("*.md")}
    assert pages <= linked, f"docs pages the README does not link: {sorted(pages - linked)}"


# ---------------------------------------------------------------------------------------------------------
# (b) Paths named by the README's layout and "where to change what" tables
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("heading", "column"), [("Layout", "Path"), ("Where to change what", "Where")])
def test_the_readme_tables_name_existing_paths(heading: str, column: str) -> None:
    """Every backticked path of the README's layout table and "where to change what" table exists."""
    paths = backticked(table_column(readme_section(heading), column))
    assert len(paths) >= 10, paths
    missing = [p for p in paths if not exists_in(repo_files(), p)]
    assert not missing, f"the README's '{heading}' table names paths that do not exist: {missing}"


# ---------------------------------------------------------------------------------------------------------
# (c) The layout table covers the repository
# ---------------------------------------------------------------------------------------------------------
def test_the_layout_table_lists_every_top_level_directory() -> None:
    """Every top-level directory git tracks (dot-directories aside, except .ci) is in the layout table."""
    tracked = git_files("--cached")
    top = {f.split("/", 1)[0] for f in tracked if "/" in f}
    top = {d for d in top if not d.startswith(".") or d == ".ci"}
    assert {"ml", "api", "infra", "tests"} <= top
    listed = {p.rstrip("/").split("/", 1)[0] for p in backticked(table_column(readme_section("Layout"), "Path"))}
    assert top <= listed, f"top-level directories missing from the README's layout table: {sorted(top - listed)}"
