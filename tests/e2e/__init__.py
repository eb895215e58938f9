"""End-to-end tests: a real qcluster subprocess, a loopback HTTP sink, the test database."""

from __future__ import annotations
