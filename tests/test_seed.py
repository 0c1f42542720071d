"""`python -m logitlab.seed` shows every number of the notebook, NumPy next to PyTorch."""

from __future__ import annotations

from logitlab.notebook.demo import comparisons

NOTEBOOK = [
    "[0.65900114 0.24243297 0.09856589]",
    "tensor([0.6590, 0.2424, 0.0986])",
    "0.1189",
    "0.7675",
    "0.3567",
    "0.4170",
    "1.8406",
    "tensor([0])",
    "tensor([1])",
    "0.3846",
    "2.6299",
    "tensor([2, 0, 1])",
    "tensor([0, 1, 2])",
    "[nan nan]",
]


def row(title_word: str, quantity: str):
    (section,) = [s for s in comparisons() if title_word in s.title]
    (found,) = [r for r in section.rows if r.quantity == quantity]
    return found


def test_numpy_and_pytorch_agree_where_the_inputs_are_the_same() -> None:
    for title, quantity, value in [
        ("Cross-entropy", "Loss 1, nn.CrossEntropyLoss (logits, index)", "0.4170"),
        ("Cross-entropy", "Loss 2, nn.CrossEntropyLoss (logits, index)", "1.8406"),
        ("Cross-entropy", "Loss 1, per sample -log p[0]", "0.3567"),
        ("batch of three", "Loss 1, mean over 3 samples", "0.3846"),
        ("batch of three", "Loss 2, mean over 3 samples", "2.6299"),
        ("Binary", "BCEWithLogitsLoss", "40.0000"),
        ("Binary", "sigmoid, then BCELoss", "100.0000"),
    ]:
        r = row(title, quantity)
        assert (r.numpy, r.torch) == (value, value), quantity


def test_notebook_numpy_losses_and_their_explanation() -> None:
    assert row("Cross-entropy", "Loss 1, notebook NumPy (probs, one-hot)").numpy == "0.1189"
    assert row("Cross-entropy", "Loss 2, notebook NumPy (probs, one-hot)").numpy == "0.7675"
    (section,) = [s for s in comparisons() if s.title.startswith("Cross-entropy")]
    assert "pred.shape[0]" in section.explanation and "0.3567" in section.explanation


def test_printed_output_has_every_notebook_number(run_cli) -> None:
    result = run_cli("logitlab.seed")
    assert result.returncode == 0, result.stderr
    missing = [n for n in NOTEBOOK if n not in result.stdout]
    assert missing == []
    assert "Warning" not in result.stderr
