"""CSV tables, read with the `csv` module: UTF-8 with or without a byte-order mark, an optional
header row, numeric feature columns, and (for training data) one label column of any type.

What cannot be read exactly is refused in one line: a header that may be a data row, a column
name given twice, a missing label (an empty cell, or a marker such as `nan` or `NA`).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError

# The cells pandas.read_csv reads as missing by default, compared case-insensitively.
MISSING = {
    "#n/a", "#n/a n/a", "#na", "-1.#ind", "-1.#qnan", "-nan", "1.#ind", "1.#qnan", "<na>",
    "n/a", "na", "null", "nan", "none",
}  # fmt: skip


def is_number(cell: str) -> bool:
    """Whether a CSV cell reads as a number ("nan" and "inf" do; validation refuses them later)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(
    path: Path, what: str, header: bool | None = None, names: list[str] | None = None
) -> tuple[list[str] | None, list[list[str]], int]:
    """(header or None, data rows, line number of the first data row) of a CSV file.

    Blank lines are skipped. `header` true or false says whether the first row is a header;
    null detects it: the first row is a header when it holds the column `names` (the training
    columns, for predict), or when one of its cells is not a number above a number. A first row
    of numbers that looks like column names (0, 1, 2, ...) is refused as ambiguous. Rows of
    different lengths, repeated column names, empty and header-only files are refused.
    """
    if path.is_dir():
        raise ConfigError(f"{what}={path} is a folder; give a .csv file")
    if not path.is_file():
        raise ConfigError(f"{what}={path} does not exist; give a .csv file")
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            numbered = [(n, row) for n, row in enumerate(csv.reader(handle), start=1)]
    except UnicodeDecodeError as error:
        raise ConfigError(
            f"{what}={path} is not UTF-8 text (byte {error.start}); save it as UTF-8 CSV"
        ) from None
    except csv.Error as error:
        raise ConfigError(f"{what}={path} is not a readable CSV ({error}); fix the file") from None
    numbered = [(n, [cell.strip() for cell in row]) for n, row in numbered if any(row)]
    if not numbered:
        raise ConfigError(f"{what}={path} is empty; give a CSV with one sample per row")
    first = numbered[0][1]
    if header is None:
        header = _is_header(first, numbered[1][1] if len(numbered) > 1 else None, names)
        if header is None:
            raise ConfigError(
                f"{what}={path}: the first row ({', '.join(first[:4])}"
                f"{', ...' if len(first) > 4 else ''}) may be a header of numbers or a data row; "
                "say which with data.header=true or data.header=false"
            )
    head = first if header else None
    numbered = numbered[1:] if header else numbered
    if not numbered:
        raise ConfigError(f"{what}={path} has a header but no data rows; add samples")
    if head is not None:
        seen: dict[str, int] = {}
        for i, name in enumerate(head):
            if name in seen:
                raise ConfigError(
                    f"{what}={path}: the header names column '{name}' twice (columns "
                    f"{seen[name]} and {i}); give every column its own name"
                )
            seen[name] = i
    width = len(head) if head is not None else len(numbered[0][1])
    for line, row in numbered:
        if len(row) != width:
            raise ConfigError(
                f"{what}={path}: line {line} has {len(row)} columns, the "
                f"{'header' if head is not None else 'first row'} {width}; fix the row"
            )
    return head, [row for _, row in numbered], numbered[0][0]


def _is_header(first: list[str], second: list[str] | None, names: list[str] | None) -> bool | None:
    """Whether the first row is a header (None: it cannot be told from the file)."""
    if names and set(names) <= set(first):
        return True
    if not all(is_number(cell) for cell in first if cell):
        if second is None:
            return True
        return any(not is_number(a) and is_number(b) for a, b in zip(first, second, strict=False))
    integers = [float(cell) for cell in first if cell]
    counting = (
        len(first) > 2
        and all(v.is_integer() for v in integers)
        and (integers == [float(i + integers[0]) for i in range(len(integers))])
    )  # 0, 1, 2, ... or 1, 2, 3, ...: column numbers, or a row that happens to count
    return None if counting else False


def check_target(path: Path, target: Any, header: bool | None = None) -> None:
    """data.target against the first rows of data.path, before anything heavy is imported (the
    file is read whole, and checked in full, when the data load)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = []
            for row in csv.reader(handle):
                rows += [[cell.strip() for cell in row]] if any(row) else []
                if len(rows) == 2:
                    break
    except (OSError, UnicodeDecodeError, csv.Error):
        return  # the load says what is wrong with the file
    if not rows or target is None:
        return
    second = rows[1] if len(rows) > 1 else None
    named = header if header is not None else _is_header(rows[0], second, None)
    if named is not None:  # None: ambiguous, refused at load in its own words
        for column in (
            target if isinstance(target, Sequence) and not isinstance(target, str) else [target]
        ):
            what = f"data.path={path}, data.target={column}"
            column_index(rows[0] if named else None, column, len(rows[0]), what)


def column_index(header: list[str] | None, column: Any, width: int, what: str) -> int:
    """The index of `column` (a header name, or an index; negative counts from the end)."""
    if isinstance(column, str) and not column.lstrip("-").isdigit():
        if header is None:
            raise ConfigError(
                f"{what}: column '{column}' named, but the file has no header row; give the "
                f"column's index (0..{width - 1}, or -1 for the last)"
            )
        if column not in header:
            shown = ", ".join(header[:8]) + (f", ... ({len(header)} in all)" * (len(header) > 8))
            raise ConfigError(
                f"{what}: no column '{column}' (the columns are {shown}); "
                "set data.target to one of them"
            )
        return header.index(column)
    index = int(column)
    if not -width <= index < width:
        raise ConfigError(f"{what}: column index {index} is out of range for {width} columns")
    return index % width


def numeric_matrix(
    rows: list[list[str]], columns: list[int], names: list[str], first_line: int, what: str
) -> np.ndarray:
    """float32 (rows x columns); a non-number is refused naming its column and line."""
    values = np.empty((len(rows), len(columns)), dtype=np.float32)
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            cell = row[column]
            try:
                values[r, c] = float(cell)
            except ValueError:
                raise ConfigError(
                    f"{what}: column '{names[c]}' holds '{cell}' (line {first_line + r}), not a "
                    "number; feature columns must be numeric (encode or drop that column)"
                ) from None
    return values


@dataclass
class LabelledTable:
    """A training table: features, class indices, and the names behind both."""

    x: np.ndarray
    y: np.ndarray
    class_names: list[str]
    feature_names: list[str]
    target_name: str
    target_index: int | list[int]  # several: the multilabel head's 0/1 label columns
    header: bool


def _label_order(labels: list[str]) -> list[str]:
    """Distinct labels, numerically sorted when all are numbers, else alphabetically."""
    distinct = set(labels)
    if all(is_number(label) for label in distinct):
        return sorted(distinct, key=float)
    return sorted(distinct)


def canonical(label: str) -> str:
    """A label as one class: numbers by their value ('1', '1.0' and '1e0' are class '1')."""
    if not is_number(label):
        return label
    value = float(label)
    return str(int(value)) if value.is_integer() else repr(value)


def read_labelled_csv(path: Path, target: Any, header: bool | None = None) -> LabelledTable:
    """Features and labels of a CSV; labels (numbers or strings) become class indices 0..C-1.

    Class i is the i-th distinct label in sorted order, so labels 0..C-1 keep their values and
    `class_names` holds the mapping (saved with the run).
    """
    what = f"data.path={path}"
    head, rows, first_line = read_csv(path, "data.path", header)
    width = len(rows[0])
    if width < 2:
        raise ConfigError(f"{what} has one column; it needs feature columns and a label column")
    index = column_index(head, target, width, f"{what}, data.target={target}")
    names = head if head is not None else [f"column {i}" for i in range(width)]
    columns = [i for i in range(width) if i != index]
    labels = [row[index] for row in rows]
    missing = [r for r, label in enumerate(labels) if not _is_label(label)]
    if missing:
        shown = f"'{labels[missing[0]]}'" if labels[missing[0]] else "empty"
        raise ConfigError(
            f"{what}: the label column '{names[index]}' is {shown} on line "
            f"{first_line + missing[0]} ({len(missing)} of {len(labels)} rows), a missing "
            "label; label every row or drop it"
        )
    labels = [canonical(label) for label in labels]
    order = _label_order(labels)
    if len(order) < 2:
        raise ConfigError(
            f"{what}: the label column '{names[index]}' holds one class ({order[0]}); "
            "a classifier needs at least two"
        )
    lookup = {label: i for i, label in enumerate(order)}
    return LabelledTable(
        x=numeric_matrix(rows, columns, [names[i] for i in columns], first_line, what),
        y=np.array([lookup[label] for label in labels], dtype=np.int64),
        class_names=order,
        feature_names=[names[i] for i in columns],
        target_name=names[index],
        target_index=index,
        header=head is not None,
    )


def _is_label(cell: str) -> bool:
    """Whether a label cell holds a label: not empty, not a missing marker, a finite number."""
    if cell == "" or cell.lower() in MISSING:
        return False
    return not is_number(cell) or math.isfinite(float(cell))


def read_feature_csv(
    path: Path,
    feature_names: list[str] | None = None,
    target: dict[str, Any] | None = None,
    id_column: str | None = None,
) -> np.ndarray:
    """A CSV of features to predict: with a header, the training columns are picked by name
    (the label column, if present, is ignored); without one, all columns, or all but the label
    column when there is one more column than the model takes. A training file without a
    header means one here too (`target["header"]`); `id_column` is never a feature."""
    had_header = (target or {}).get("header")
    header, rows, first_line = read_csv(
        path, "input", False if had_header is False else None, feature_names
    )
    width = len(rows[0])
    what = f"input={path}"
    if header is not None and feature_names:
        absent = [name for name in feature_names if name not in header]
        if absent:
            raise ConfigError(
                f"{what} lacks the training column(s) {', '.join(absent[:3])}; give the same "
                "columns as the training data"
            )
        columns = [header.index(name) for name in feature_names]
    elif (
        target
        and feature_names
        and width == len(feature_names) + len(labels := label_indices(target))
    ):
        columns = [i for i in range(width) if i not in labels]
    else:
        ids = header.index(id_column) if header and id_column in header else None
        columns = [i for i in range(width) if i != ids]
    names = header or [f"column {i}" for i in range(width)]
    return numeric_matrix(rows, columns, [names[i] for i in columns], first_line, what)


def label_indices(target: dict[str, Any]) -> list[int]:
    """The label column(s) of the training file, from its data.json record."""
    index = target["target_index"]
    return list(index) if isinstance(index, list) else [index]


def read_column(path: Path, name: str) -> list[str]:
    """The cells of the column `name` of a CSV with a header (an id column, for predict)."""
    header, rows, _ = read_csv(path, "input", True)
    if header is None or name not in header:
        shown = ", ".join((header or [])[:8])
        raise ConfigError(f"id_column={name}: input={path} has no column '{name}' ({shown})")
    return [row[header.index(name)] for row in rows]
