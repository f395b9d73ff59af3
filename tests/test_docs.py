"""The documentation: the Sphinx build is warning-free, the repository stands alone, and every
``docs/theory/<page>.md §N.M`` reference resolves to a numbered heading of that page."""
from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THEORY = DOCS / "theory"
PAGES = {1: "environment", 2: "dro", 3: "dpo", 4: "rebel", 5: "sail", 6: "constrained", 7: "claims",
         8: "identities", 9: "variants"}
# pointers to the reference material the theory was once kept in, outside any clone; spelled in parts
# so that this test does not itself point there
FORBIDDEN = (".." + "/shared", "shared" + "/spec", "theory" + ".md")
REFERENCE = re.compile(r"docs/theory/(?P<page>\w+)\.md §(?P<sec>\d+(?:\.\d+)*)")


def _tracked_files() -> list[str]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked-file checks need `git ls-files`")
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def _text(name: str) -> str | None:
    try:
        return (ROOT / name).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
        return None


def _headings(page: str) -> set[str]:
    text = (THEORY / f"{page}.md").read_text(encoding="utf-8")
    return {m.group(1).rstrip(".") for m in re.finditer(r"^#+ (\d+(?:\.\d+)*)\.?\s", text, flags=re.M)}


def test_sphinx_build_has_no_warnings(tmp_path):
    """`python -m sphinx -W --keep-going -b html docs DIR` succeeds: MyST pages, maths, and the API reference
    generated from every module's docstrings (the `docs` extra of pyproject.toml installs the tools)."""
    missing = [m for m in ("sphinx", "myst_parser") if importlib.util.find_spec(m) is None]
    assert not missing, f"{', '.join(missing)} not installed: the test extra installs them (pip install -e '.[test]')"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
           "-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    run = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"sphinx build failed:\n{run.stdout[-4000:]}\n{run.stderr[-8000:]}"
    for page in PAGES.values():
        assert (tmp_path / "html" / "theory" / f"{page}.html").is_file()
    assert (tmp_path / "html" / "api.html").is_file()


def test_no_tracked_file_points_outside_the_repository():
    """The theory lives in docs/theory/: no tracked file names the old external spec file."""
    offenders = []
    for name in _tracked_files():
        text = _text(name)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            hits = [s for s in FORBIDDEN if s in line]
            if hits:
                offenders.append(f"{name}:{n}: {hits}: {line.strip()[:100]}")
    assert not offenders, ("files that point outside the repository (cite docs/theory/<page>.md §N.M):\n"
                           + "\n".join(offenders))


def test_theory_pages_carry_their_section_numbers():
    """Page N holds sections N.x only, so 'docs/theory/<page>.md §N.M' maps mechanically."""
    for number, page in PAGES.items():
        heads = _headings(page)
        assert str(number) in {h.split(".")[0] for h in heads}, f"{page}.md has no section {number}"
        wrong = sorted(h for h in heads if h.split(".")[0] != str(number))
        assert not wrong, f"{page}.md has headings of another section: {wrong}"


def test_every_docs_reference_resolves():
    """Each 'docs/theory/<page>.md §N.M' in a tracked file names an existing page whose number is N, and a
    heading N.M (or a parent heading, for an item such as §1.8.4 inside §1.8)."""
    bad = []
    for name in _tracked_files():
        text = _text(name)
        if text is None or "docs/theory/" not in text:
            continue
        for m in REFERENCE.finditer(text):
            page, sec = m.group("page"), m.group("sec")
            if page not in PAGES.values():
                bad.append(f"{name}: unknown page {page}.md")
                continue
            parts = sec.split(".")
            if PAGES.get(int(parts[0])) != page:
                bad.append(f"{name}: §{sec} is not on {page}.md")
                continue
            heads = _headings(page)
            if not any(".".join(parts[:k]) in heads for k in range(len(parts), 0, -1)):
                bad.append(f"{name}: {page}.md has no heading {sec}")
    assert not bad, "\n".join(bad)
