"""The model room: the heads, the networks, the losses and the metrics."""

from logitlab import lazy_attributes

__getattr__ = lazy_attributes(
    __name__,
    {"MulticlassClassifier": "logitlab.models.heads", "BinaryClassifier": "logitlab.models.heads"},
)
