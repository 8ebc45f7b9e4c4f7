"""Imagine Me: likeness images from a face embedding and a prompt."""

__version__ = "0.1.0"
