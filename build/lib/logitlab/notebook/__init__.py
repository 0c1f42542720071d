"""The notebook room: the teaching notebook reproduced (logitlab.seed), its NumPy reference."""
