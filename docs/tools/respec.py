"""Rewrite references to the old external theory spec into references to ``docs/theory/<page>.md``.

The theory pages keep the spec's section numbers, so the mapping is mechanical: section N lives on

    1 environment.md   2 dro.md   3 dpo.md   4 rebel.md   5 sail.md
    6 constrained.md   7 claims.md   8 identities.md   9 variants.md

Forms rewritten (counts are printed per form):

* ``spec §N.M`` / ``Spec §N`` / ``spec's §N`` / ``theory.md §N``   ->  ``docs/theory/<page>.md §N.M``
* lists and ranges after such a lead, e.g. ``spec §3.1 and §7.3``, ``spec §4.1-§4.5``, ``spec §5.1–5.3``,
  ``spec §4.4, §4.5``  ->  each item resolved to its page (a range stays one reference when both ends
  are on the same page)
* ``spec open item N``  ->  ``docs/theory/variants.md §9.3 item N``
* the two sentences that name the external file (README, CONTRIBUTING), and any other
  ``../shared/spec/theory.md``  ->  ``docs/theory/``
* a bare ``§N.M`` (no lead word), e.g. ``(§5.2)`` in a module whose docstring cites the spec, or the
  ``§7.3`` of ``spec §6.3 Lemma 8, §7.3``: every bare § in this repository points into the spec (checked
  when this tool was written); ``--no-bare`` leaves them alone and lists them instead.

Prose that mentions "the spec" without a section number ("derived in the spec", "the spec's rule") is
listed as needing a hand edit, never rewritten.

Usage (from the repository root)::

    python docs/tools/respec.py                 # dry run: what would change, with counts
    python docs/tools/respec.py --write         # apply to every tracked text file outside docs/
    python docs/tools/respec.py --write FILES   # only these files
    python docs/tools/respec.py --no-bare       # leave bare § references alone (listed instead)
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

PAGES = {1: "environment", 2: "dro", 3: "dpo", 4: "rebel", 5: "sail", 6: "constrained", 7: "claims",
         8: "identities", 9: "variants"}
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".cfg", ".ini", ".rst", ".yml", ".yaml", ""}
SECTION = r"\d+(?:\.\d+)*"
# a lead word, the first section, then ranges (the second § optional) and lists (§ required)
LEAD = r"(?P<lead>\b[Ss]pec(?:'s)?\s+|\btheory\.md`?\s+)"
CONTINUATION = rf"(?:\s*[-–—]\s*§?{SECTION}|\s*(?:,|and|or|/)\s*§{SECTION})"
REFERENCE = re.compile(rf"{LEAD}§(?P<body>{SECTION}{CONTINUATION}*)")
TOKEN = re.compile(rf"(?P<sep>\s*(?:[-–—]|,|and|or|/)\s*|^)§?(?P<sec>{SECTION})")
OPEN_ITEM = re.compile(r"\b[Ss]pec open item (?P<n>\d+)")
BARE = re.compile(rf"(?<![\w/.§])§(?P<body>{SECTION}{CONTINUATION}*)")
RESOLVED = re.compile(rf"docs/theory/\w+\.md §{SECTION}{CONTINUATION}*")
PROSE = re.compile(r"\b(?:the spec\b|[Ss]pec's\b|in the spec\b|derived in the spec\b)")
SENTENCES = (
    ("The spec is `../shared/spec/theory.md` (read its §0 index, then your sections).",
     "The theory is in `docs/theory/`, one page per area with numbered sections (`docs/index.md` lists them)."),
    ("(the maths is in the spec, `../shared/spec/theory.md`)",
     "(the maths is in `docs/theory/`, one page per area)"),
)
EXTERNAL_FILE = re.compile(r"(?:\.\./)?shared/spec/theory\.md")
SKIP = {"docs/tools/respec.py", "tests/test_docs.py"}  # they spell the old forms on purpose


def page_of(section: str) -> str:
    """'4.7' -> 'docs/theory/rebel.md'."""
    top = int(section.split(".")[0])
    if top not in PAGES:
        raise ValueError(f"no docs page for section {section}")
    return f"docs/theory/{PAGES[top]}.md"


def resolve(body: str) -> str:
    """'3.1 and §7.3' -> 'docs/theory/dpo.md §3.1 and docs/theory/claims.md §7.3'."""
    out, current = [], None
    for m in TOKEN.finditer(body):
        sep, sec = m.group("sep"), m.group("sec")
        page = page_of(sec)
        is_range = sep.strip() in ("-", "–", "—")
        if page == current:
            out.append(f"{sep}{sec}" if is_range else f"{sep}§{sec}")
        else:
            out.append(f"{sep}{page} §{sec}")
            current = page
    return "".join(out)


def rewrite(text: str, bare: bool, counts: Counter) -> str:
    """Apply every rewrite to ``text``; ``counts`` receives one entry per rewritten occurrence and form."""
    for old, new in SENTENCES:
        if old in text:
            counts["sentence naming the external file"] += text.count(old)
            text = text.replace(old, new)

    def ref(m: re.Match) -> str:
        lead = m.group("lead").strip()
        kind = "theory.md §N" if lead.startswith("theory") else f"{lead} §N"
        body = m.group("body")
        if re.search(r"[-–—]", body):
            kind += " (range)"
        if re.search(r",|\band\b|\bor\b|/", body):
            kind += " (list)"
        counts[kind] += 1
        return resolve(body)

    text = REFERENCE.sub(ref, text)

    def item(m: re.Match) -> str:
        counts["spec open item N"] += 1
        return f"docs/theory/variants.md §9.3 item {m.group('n')}"

    text = OPEN_ITEM.sub(item, text)
    n_ext = len(EXTERNAL_FILE.findall(text))
    if n_ext:
        counts["other mention of the external file"] += n_ext
        text = EXTERNAL_FILE.sub("docs/theory/", text)
    if bare:
        out, last = [], 0
        for m in bare_matches(text):
            counts["bare §N"] += 1
            out.append(text[last:m.start()] + resolve(m.group("body")))
            last = m.end()
        text = "".join(out) + text[last:]
    return text


def bare_matches(text: str) -> list[re.Match]:
    """Bare § references: those not inside an already resolved ``docs/theory/<page>.md §...`` reference."""
    covered = [m.span() for m in RESOLVED.finditer(text)]
    return [m for m in BARE.finditer(text) if not any(a <= m.start() < b for a, b in covered)]


def tracked_files(root: Path) -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout.split()
    return [root / n for n in names
            if not n.startswith("docs/") and Path(n).suffix in TEXT_SUFFIXES and n not in SKIP]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("files", nargs="*", type=Path, help="files to rewrite (default: tracked text files outside docs/)")
    ap.add_argument("--write", action="store_true", help="write the changes (default: dry run)")
    ap.add_argument("--no-bare", dest="bare", action="store_false", help="leave bare § references alone")
    args = ap.parse_args(argv)
    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True).stdout.strip())
    files = [f.resolve() for f in args.files] or tracked_files(root)
    total, hand = Counter(), []
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        counts = Counter()
        new = rewrite(text, args.bare, counts)
        rel = path.relative_to(root) if path.is_relative_to(root) else path
        for n, line in enumerate(new.splitlines(), 1):
            if PROSE.search(line) or (not args.bare and bare_matches(line)):
                hand.append(f"{rel}:{n}: {line.strip()[:110]}")
        if new != text:
            total.update(counts)
            print(f"{rel}: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
            if args.write:
                path.write_text(new, encoding="utf-8")
    print("\ntotal rewrites by form" + ("" if args.write else " (dry run: nothing written)") + ":")
    for k, v in total.most_common():
        print(f"  {v:4d}  {k}")
    if hand:
        print(f"\n{len(hand)} line(s) still mention the spec in prose or by a bare §; edit by hand"
              + ":")
        for h in hand:
            print("  " + h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
