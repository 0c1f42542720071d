"""logitlab: a Lightning + Hydra research template for binary and multiclass heads."""

__version__ = "0.1.0"
