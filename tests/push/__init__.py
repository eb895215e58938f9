"""Tests of the Web Push parts: encryption, VAPID, keys, and the independent push receiver they are checked against."""

from __future__ import annotations
