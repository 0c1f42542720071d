"""The run room: launch, folder lock, resume, restore, callbacks, checkpoint I/O, DDP, sweeps."""
