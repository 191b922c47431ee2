"""The converger gateway: the Sanic app, the only package that imports both store and adapters."""

__version__ = "0.1.0"
