"""Multilabel tables: several 0/1 label columns (data.target=[a,b,c]), or one column of label sets
("a|c", data.label_separator; an empty cell is a sample with no label). Labels are named by their
columns, or sorted alphabetically from the sets (data.class_names fixes the list and refuses any
other name)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from logitlab.data.tables import LabelledTable, column_index, numeric_matrix, read_csv
from logitlab.errors import ConfigError


def targets_of(target: Any) -> list[Any]:
    """data.target as a list of columns (one name or index, or several)."""
    if isinstance(target, Sequence) and not isinstance(target, str):
        return list(target)
    return [target]


def read_multilabel_csv(
    path: Path,
    target: Any,
    header: bool | None,
    separator: str | None,
    class_names: list[str] | None = None,
) -> LabelledTable:
    """Features and (N, K) 0/1 labels of a CSV, from label columns or a label-set column."""
    what = f"data.path={path}"
    head, rows, first_line = read_csv(path, "data.path", header)
    width = len(rows[0])
    names = head if head is not None else [f"column {i}" for i in range(width)]
    wanted = targets_of(target)
    if separator is not None and len(wanted) != 1:
        raise ConfigError(
            f"{what}: data.label_separator reads one column of label sets, but data.target "
            f"names {len(wanted)}; give one column, or data.label_separator=null for 0/1 columns"
        )
    indices = [column_index(head, t, width, f"{what}, data.target={t}") for t in wanted]
    features = [i for i in range(width) if i not in indices]
    if not features:
        raise ConfigError(f"{what}: every column is a label column; it needs feature columns")
    if separator is None:
        y = label_columns(rows, indices, names, first_line, what)
        labels = [names[i] for i in indices]
    else:
        labels, y = label_sets(rows, indices[0], separator, class_names, first_line, what)
    return LabelledTable(
        x=numeric_matrix(rows, features, [names[i] for i in features], first_line, what),
        y=y,
        class_names=labels,
        feature_names=[names[i] for i in features],
        target_name="|".join(names[i] for i in indices),
        target_index=indices if len(indices) > 1 else indices[0],
        header=head is not None,
    )


def label_columns(
    rows: list[list[str]], indices: list[int], names: list[str], first_line: int, what: str
) -> np.ndarray:
    """The 0/1 label columns as an int64 matrix; anything but 0 or 1 refused with its line."""
    y = np.empty((len(rows), len(indices)), dtype=np.int64)
    for r, row in enumerate(rows):
        for c, column in enumerate(indices):
            cell = row[column]
            try:
                value = float(cell)
            except ValueError:
                value = float("nan")
            if value not in (0.0, 1.0):
                raise ConfigError(
                    f"{what}: label column '{names[column]}' holds '{cell}' (line "
                    f"{first_line + r}); a multilabel target column holds 0 or 1"
                )
            y[r, c] = int(value)
    return y


def label_sets(
    rows: list[list[str]],
    column: int,
    separator: str,
    class_names: list[str] | None,
    first_line: int,
    what: str,
) -> tuple[list[str], np.ndarray]:
    """The label names and the (N, K) 0/1 matrix of a column of `separator`-joined sets."""
    sets = [[name.strip() for name in row[column].split(separator) if name.strip()] for row in rows]
    labels = list(class_names) if class_names else sorted({n for s in sets for n in s})
    lookup = {name: k for k, name in enumerate(labels)}
    y = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for r, names in enumerate(sets):
        for name in names:
            if name not in lookup:
                shown = ", ".join(labels[:8]) + (", ..." if len(labels) > 8 else "")
                raise ConfigError(
                    f"{what}: line {first_line + r} names label '{name}', which is not one of "
                    f"data.class_names ({shown}); add it there or fix the row"
                )
            y[r, lookup[name]] = 1
    return labels, y
