"""Model files: reading, writing, validating and migrating checkpoints (.pt) and model folders
(model.safetensors + config.json). `read_model` and `load_model` open either form; nothing here
trains, so sample/, study/, export/ and the CLI read a model without importing the trainer."""
from .checkpoint import Checkpoint, read_checkpoint, save_checkpoint
from .load import load_model, read_model

__all__ = ["Checkpoint", "load_model", "read_checkpoint", "read_model", "save_checkpoint"]
