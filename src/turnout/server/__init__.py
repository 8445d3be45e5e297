"""The OpenAI-compatible HTTP server over the library."""

from .app import create_app

__all__ = ["create_app"]
