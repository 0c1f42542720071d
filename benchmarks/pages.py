"""docs/benchmarks.md: a head (bench.py's) and the sections the scripts write, in one order.

Each script writes its section to docs/.benchmarks_<name>.section.md; the page is put together
again from every section file there, in ORDER, so rewriting one section never touches another.
"""

from __future__ import annotations

from pathlib import Path

# bench.py's own (""), then each script's, in the order the page shows them
ORDER = ("", "load", "contention", "instructions", "callbacks", "drops", "drops_counted",
         "instructions_workloads", "spread", "gpu", "startup")  # fmt: skip


def section_file(docs: Path, name: str) -> Path:
    """Where section `name` is kept: docs/.benchmarks_<name>.section.md (bench.py's: no name)."""
    return docs / f".benchmarks{'_' + name if name else ''}.section.md"


def assemble(head: str, docs: Path) -> None:
    """docs/benchmarks.md as `head` followed by every section file there, in ORDER."""
    sections = [f.read_text() for n in ORDER if (f := section_file(docs, n)).is_file()]
    (docs / "benchmarks.md").write_text(head + "\n".join(sections))


def head_of(page: str, docs: Path) -> str:
    """What the page holds before its first section: bench.py's head (the whole page if none)."""
    lines = page.splitlines(keepends=True)
    titles = {
        f.read_text().split("\n", 1)[0] for n in ORDER if (f := section_file(docs, n)).is_file()
    }
    for i, line in enumerate(lines):
        if line.rstrip("\n") in titles:
            return "".join(lines[:i])
    return page.rstrip("\n") + "\n\n"


def write_section(text: str, name: str, docs: Path) -> None:
    """`text` (a section starting with its title line) as section `name`, and the page again."""
    if name not in ORDER:
        raise ValueError(f"section {name!r} is not one of pages.ORDER")
    page = docs / "benchmarks.md"
    head = head_of(page.read_text() if page.is_file() else "# Benchmarks\n", docs)
    section_file(docs, name).write_text(text)
    assemble(head, docs)
