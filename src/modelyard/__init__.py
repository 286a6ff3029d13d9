"""modelyard: a model registry that knows where every model came from."""

__version__ = "0.1.0"
