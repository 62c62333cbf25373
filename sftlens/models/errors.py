"""Errors of the models package that the CLI reports without importing torch."""


class ModelLoadError(RuntimeError):
    """A model or tokenizer that cannot be loaded; the message is one sentence for the user."""
