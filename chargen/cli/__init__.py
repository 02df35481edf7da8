"""The command line over the library; `main` is the `chargen` entry point."""
from .app import app, main

__all__ = ["app", "main"]
