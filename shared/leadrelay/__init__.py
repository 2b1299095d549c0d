"""Leadrelay shared library: the platform every service is built on."""

__version__ = "0.1.0"
