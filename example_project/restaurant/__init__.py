"""The host app of the example project: a restaurant back office."""

from __future__ import annotations
