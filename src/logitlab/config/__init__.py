"""The config room: schemas, composition, rules across groups, objects built from config."""

from pathlib import Path

# The Hydra configs ship inside the package, so an installed logitlab runs from any folder.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "conf"
