"""CSV tables, read with the `csv` module: UTF-8 with or without a byte-order mark, an optional
header row, numeric feature columns, and (for training data) one label column of any type.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.errors import ConfigError


def is_number(cell: str) -> bool:
    """Whether a CSV cell reads as a number ("nan" and "inf" do; validation refuses them later)."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: Path, what: str) -> tuple[list[str] | None, list[list[str]], int]:
    """(header or None, data rows, line number of the first data row) of a CSV file.

    Blank lines are skipped. The first row is a header when one of its cells is not a number in
    a column whose next row holds a number (a feature column). Rows of different lengths,
    empty files and header-only files are refused, naming the line.
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
    header = None
    if len(numbered) == 1:
        if not all(is_number(cell) for cell in numbered[0][1] if cell):
            raise ConfigError(f"{what}={path} has a header but no data rows; add samples")
    else:
        first, second = numbered[0][1], numbered[1][1]
        if any(not is_number(a) and is_number(b) for a, b in zip(first, second, strict=False)):
            header, numbered = first, numbered[1:]
    width = len(header) if header is not None else len(numbered[0][1])
    for line, row in numbered:
        if len(row) != width:
            raise ConfigError(
                f"{what}={path}: line {line} has {len(row)} columns, the "
                f"{'header' if header is not None else 'first row'} {width}; fix the row"
            )
    return header, [row for _, row in numbered], numbered[0][0]


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
    target_index: int


def _label_order(labels: list[str]) -> list[str]:
    """Distinct labels, numerically sorted when all are numbers, else alphabetically."""
    distinct = set(labels)
    if all(is_number(label) for label in distinct):
        return sorted(distinct, key=lambda label: (float(label), label))
    return sorted(distinct)


def read_labelled_csv(path: Path, target: Any) -> LabelledTable:
    """Features and labels of a CSV; labels (numbers or strings) become class indices 0..C-1.

    Class i is the i-th distinct label in sorted order, so labels 0..C-1 keep their values and
    `class_names` holds the mapping (saved with the run).
    """
    what = f"data.path={path}"
    header, rows, first_line = read_csv(path, "data.path")
    width = len(rows[0])
    if width < 2:
        raise ConfigError(f"{what} has one column; it needs feature columns and a label column")
    index = column_index(header, target, width, f"{what}, data.target={target}")
    names = header if header is not None else [f"column {i}" for i in range(width)]
    columns = [i for i in range(width) if i != index]
    labels = [row[index] for row in rows]
    missing = [first_line + r for r, label in enumerate(labels) if label == ""]
    if missing:
        raise ConfigError(
            f"{what}: the label column '{names[index]}' is empty on line {missing[0]} "
            f"({len(missing)} rows); label every row or drop it"
        )
    order = _label_order(labels)
    if len(order) < 2:
        raise ConfigError(
            f"{what}: the label column '{names[index]}' holds one class ({order[0]}); "
            "a classifier needs at least two"
        )
    lookup = {label: i for i, label in enumerate(order)}
    names_out = [_readable(label) for label in order]
    return LabelledTable(
        x=numeric_matrix(rows, columns, [names[i] for i in columns], first_line, what),
        y=np.array([lookup[label] for label in labels], dtype=np.int64),
        class_names=names_out,
        feature_names=[names[i] for i in columns],
        target_name=names[index],
        target_index=index,
    )


def _readable(label: str) -> str:
    """'1.0' reads as '1'; any other label as it is."""
    if is_number(label):
        value = float(label)
        if math.isfinite(value) and value == int(value):
            return str(int(value))
    return label


def read_feature_csv(
    path: Path, feature_names: list[str] | None = None, target: dict[str, Any] | None = None
) -> np.ndarray:
    """A CSV of features to predict: with a header, the training columns are picked by name
    (the label column, if present, is ignored); without one, all columns, or all but the label
    column when there is one more column than the model takes."""
    header, rows, first_line = read_csv(path, "input")
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
    elif target and feature_names and width == len(feature_names) + 1:
        columns = [i for i in range(width) if i != target["target_index"]]
    else:
        columns = list(range(width))
    names = header or [f"column {i}" for i in range(width)]
    return numeric_matrix(rows, columns, [names[i] for i in columns], first_line, what)
