"""Capsule Networks with dynamic routing (Sabour, Frosst & Hinton, NIPS 2017)."""

__version__ = "0.1.0"
