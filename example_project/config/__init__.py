"""Project package of the example restaurant back office."""

from __future__ import annotations
