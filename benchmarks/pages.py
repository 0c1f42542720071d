"""docs/benchmarks.md's sections: each script writes its own and keeps the others."""

from __future__ import annotations

from pathlib import Path


def write_section(text: str, name: str, docs: Path) -> None:
    """`text` (a section starting with its `## ` title) as docs/.benchmarks_`name`.section.md,
    and in docs/benchmarks.md in place of the section of that title (appended if none)."""
    (docs / f".benchmarks_{name}.section.md").write_text(text)
    page = docs / "benchmarks.md"
    current = page.read_text() if page.is_file() else "# Benchmarks\n"
    title = text.split("\n", 1)[0]
    if title in current:  # replace the section up to the next one
        head, _, tail = current.partition(title)
        rest = tail.split("\n## ", 1)
        current = head + text + ("\n## " + rest[1] if len(rest) > 1 else "")
    else:
        current = current.rstrip("\n") + "\n\n" + text
    page.write_text(current)
