"""The documentation site (``docs/``, ``mkdocs.yml``): it builds without a warning, its
generated reference pages are those the generator writes now, every page of it that the
repository cites (a path under docs/ ending in .md, with or without an anchor) exists with
that heading, and nothing in the repository refers to files outside it."""

import functools
import os
import re
import subprocess
import sys
from pathlib import Path

import markdown
import pytest
from markdown.extensions.toc import slugify

from lemgrid.scenarios import mechanisms
from lemgrid.scenarios.reference import cell, main, mechanism_page, write

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
GENERATED = ("reference/cli.md", "reference/scenario-schema.md")
PARAMETERS = "reference/parameters"
README_MAX_LINES = 260
# A cited page: docs/ at the start of a path (not inside another one), then an optional anchor.
CITED = re.compile(r"(?<![\w./-])docs/([\w./-]+?\.md)(?:#([\w-]+))?")
# Built piece by piece, so that this file does not match them itself.
OUTSIDE = ("MODELS" + ".md", "DESIGN" + ".md", "STYLE" + ".md", ".." + "/shared",
           "seeds" + "/")
SHORTHAND = re.compile("seed" + r" 00\d", re.IGNORECASE)


def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # the theme's banner about its future
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300, check=False)


def _built_in() -> dict[str, mechanisms.Mechanism]:
    return {n: m for n, m in mechanisms.registry().items() if m.origin == "built-in"}


@functools.cache
def _tracked_texts() -> dict[str, str]:
    """Every tracked text file of the repository by its path (binary files left out)."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                            check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout: no tracked files to read")
    texts = {}
    for rel in filter(None, listed.stdout.decode().split("\0")):
        path = ROOT / rel
        if not path.is_file():  # deleted in the work tree, not yet in the index
            continue
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            texts[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def _lines_matching(pattern) -> list[str]:
    """``path:line: text`` of every tracked line where ``pattern`` (a callable) is true."""
    return [f"{rel}:{n}: {line.strip()}" for rel, text in _tracked_texts().items()
            for n, line in enumerate(text.splitlines(), 1) if pattern(line)]


# -- the site --------------------------------------------------------------------------------
def test_site_builds_without_a_warning(tmp_path):
    """``mkdocs build --strict`` (what ``make docs`` runs): a missing page, link, anchor or
    snippet fails it. Every built-in mechanism's page shows its parameter table, which is
    included from the generated snippet, not built as a page of its own."""
    site = tmp_path / "site"
    done = _run("-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                "--config-file", str(ROOT / "mkdocs.yml"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (site / "reference" / "cli" / "index.html").is_file()
    assert not (site / "reference" / "parameters").exists()
    missing = []
    for name, mech in _built_in().items():
        built = site / "mechanisms" / Path(mechanism_page(mech)).stem / "index.html"
        if f"Parameters of <code>{name}</code>" not in built.read_text(encoding="utf-8"):
            missing.append(f"{name}: no parameter table in {built.relative_to(site)}")
    assert not missing, missing


def test_generated_pages_are_current(tmp_path):
    """The checked-in reference pages are, byte for byte, what the generator writes now
    (the command line, the scenario schema and one parameters page per built-in mechanism);
    after a change to any of them: ``make docs``."""
    write(tmp_path)
    fresh = {p.relative_to(tmp_path).as_posix(): p.read_bytes()
             for p in sorted(tmp_path.rglob("*.md"))}
    expected = {*GENERATED, *(f"{PARAMETERS}/{name}.md" for name in _built_in())}
    assert set(fresh) == expected
    checked_in = {rel: (DOCS / rel).read_bytes() for rel in GENERATED if (DOCS / rel).is_file()}
    checked_in |= {p.relative_to(DOCS).as_posix(): p.read_bytes()
                   for p in (DOCS / PARAMETERS).glob("*.md")}
    stale = sorted(rel for rel in fresh.keys() | checked_in.keys()
                   if fresh.get(rel) != checked_in.get(rel))
    assert not stale, (f"docs/ differs from the generator in {stale}: run "
                       "`python -m lemgrid.scenarios.reference docs` (make docs)")


def test_the_generator_refuses_a_missing_folder(tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1  # one line, no traceback


def test_a_table_cell_keeps_its_table():
    """A description with ``|`` (also inside code), newlines, a tag-like ``<name>`` and an
    attribute-list-like ``{a: b}`` stays one cell: rendered, the row has its 2 cells and the
    text reads as written."""
    text = "a | b\nc `x|y` results/<name> {a: b} ``z``"
    assert cell(text) == r"a \| b c <code>x&#124;y</code> results/&lt;name> \{a: b\} `z`"
    rendered = markdown.markdown(f"| k | v |\n|---|---|\n| 1 | {cell(text)} |",
                                 extensions=["tables", "attr_list"])
    assert rendered.count("<td>") == 2
    assert ("<td>a | b c <code>x&#124;y</code> results/&lt;name&gt; {a: b} <code>z</code></td>"
            in rendered)


# -- the repository's citations --------------------------------------------------------------
def _anchors(page: Path) -> set[str]:
    """The ids the site gives the page's headings: toc's slugify (mkdocs.yml keeps toc's
    default), ``_1``, ``_2`` after a repeated one, or an id given as ``{#id}``."""
    text = re.sub(r"^(```|~~~).*?^\1", "", page.read_text(encoding="utf-8"),
                  flags=re.MULTILINE | re.DOTALL)  # no headings inside fenced code
    ids: set[str] = set()
    for match in re.finditer(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", text, re.MULTILINE):
        title = match.group(1)
        given = re.search(r"\{[^}]*#([\w-]+)[^}]*\}$", title)
        if given:
            ids.add(given.group(1))
            continue
        title = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link: its text
        slug = slugify(re.sub(r"[`*]", "", title), "-")
        unique, n = slug, 0
        while unique in ids:
            n += 1
            unique = f"{slug}_{n}"
        ids.add(unique)
    return ids


def test_cited_pages_and_anchors_exist():
    """Every page of the site a tracked file cites (its path from the repository's top,
    under docs/, ending in .md, maybe followed by #anchor) exists and, with an anchor, has
    a heading with that anchor."""
    bad = []
    for rel, text in _tracked_texts().items():
        for n, line in enumerate(text.splitlines(), 1):
            for match in CITED.finditer(line):
                page, anchor = DOCS / match.group(1), match.group(2)
                if not page.is_file():
                    bad.append(f"{rel}:{n}: docs/{match.group(1)}: no such page")
                elif anchor and anchor not in _anchors(page):
                    bad.append(f"{rel}:{n}: docs/{match.group(1)} has no heading #{anchor}")
    assert not bad, "\n".join(bad)


def test_nothing_refers_outside_the_repository():
    """No tracked file names a file that lives outside the repository."""
    found = _lines_matching(lambda line: any(s in line for s in OUTSIDE))
    assert not found, "\n".join(found)


def test_the_papers_are_named_not_numbered():
    """The source papers are cited by authors and year, never by the internal shorthand
    (the word seed, a space and a three-digit number from 00)."""
    found = _lines_matching(lambda line: SHORTHAND.search(line) is not None)
    assert not found, "\n".join(found)


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (f"README.md has {len(lines)} lines; at most "
                                            f"{README_MAX_LINES}: the rest is on the site")
