"""Sphinx configuration of the django-notify-kit documentation.

Build with warnings as errors, from the repository root::

    pip install -r docs/requirements.txt
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Links into the Python and Django docs (intersphinx) need the network, so they are
off by default; set ``DOCS_INTERSPHINX=1`` to turn them on. (Django REST framework
publishes no Sphinx inventory.)
"""

from __future__ import annotations

import ast
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sphinx.application import Sphinx

ROOT = Path(__file__).resolve().parent.parent


def _package_version() -> str:
    """``django_notify.__version__``, read from the source so Django need not be set up."""
    tree = ast.parse((ROOT / "django_notify" / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "__version__" for target in node.targets
        ):
            value = ast.literal_eval(node.value)
            if isinstance(value, str):
                return value
    raise RuntimeError("django_notify/__init__.py does not define __version__")


project = "django-notify-kit"
author = "django_notify developers"
copyright = "django_notify developers"
release = _package_version()
version = ".".join(release.split(".")[:2])

extensions = [
    # Parses the Markdown CHANGELOG that changelog.rst includes; the pages are reST.
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build"]
templates_path: list[str] = []

default_role = "literal"
highlight_language = "python"
pygments_style = "friendly"

if os.environ.get("DOCS_INTERSPHINX"):
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "django": (
            "https://docs.djangoproject.com/en/stable/",
            "https://docs.djangoproject.com/en/stable/_objects/",
        ),
    }
    intersphinx_timeout = 10

html_theme = "furo"
html_title = f"django-notify-kit {release}"
html_static_path: list[str] = []
html_theme_options = {
    "navigation_with_keys": True,
}


def setup(app: Sphinx) -> None:
    # ``.. setting:: CHANNELS`` declares a DJANGO_NOTIFY key; ``:setting:`CHANNELS``` links to it.
    app.add_crossref_type(
        directivename="setting",
        rolename="setting",
        indextemplate="pair: %s; DJANGO_NOTIFY setting",
    )
    # ``.. check:: django_notify.E001`` declares a system check id; ``:check:`...``` links to it.
    app.add_crossref_type(
        directivename="check",
        rolename="check",
        indextemplate="pair: %s; system check",
    )
