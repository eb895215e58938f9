#!/usr/bin/env python
"""Django's command-line utility for the example project.

Run it from anywhere: ``python example_project/manage.py demo``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parent
REPOSITORY_ROOT = EXAMPLE_DIR.parent


def main() -> None:
    # The example's own apps (config, restaurant) live beside this file.
    if str(EXAMPLE_DIR) not in sys.path:
        sys.path.insert(0, str(EXAMPLE_DIR))
    # Use the installed django_notify; fall back to the checkout it ships in.
    if importlib.util.find_spec("django_notify") is None:
        sys.path.insert(1, str(REPOSITORY_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Install the project first: pip install -e . (from the repository root)."
        ) from exc
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
