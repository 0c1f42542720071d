"""logitlab's Optuna sweeper for Hydra: hydra/sweeper=optuna."""
