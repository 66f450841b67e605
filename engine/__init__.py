"""Protophone's engine: a pure library (no device I/O, no training code).

The host-facing entry point is :class:`engine.processor.Processor`; the pieces it is made of (front end,
model, identification, synthesis) are importable on their own.
"""

from engine.processor import Processor

__all__ = ["Processor"]
