"""Render notification templates with the Django template language.

Type strings are compiled by a private :class:`~django.template.Engine` that mirrors
the project's ``DjangoTemplates`` backend (same tag libraries and loaders) with two
differences: plain text is not autoescaped, and a missing variable renders as a
marker, so a context that lacks a variable fails loudly at ``notify()`` time instead
of leaving a blank in the message. Nothing here ever calls ``str.format``: context
values are data, never template source.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver
from django.template import Context, Engine, Template, engines
from django.template.backends.django import DjangoTemplates
from django.template.base import Variable, VariableNode

from django_notify.exceptions import MissingContextError

# Private-use code points: no sane context value contains them.
_MISSING_OPEN, _MISSING_CLOSE = "\ue000", "\ue001"
_MISSING_RE = re.compile(f"{_MISSING_OPEN}(.*?){_MISSING_CLOSE}", re.DOTALL)
_WHITESPACE_RE = re.compile(r"\s+")


@functools.cache
def get_engine(*, autoescape: bool) -> Engine:
    """The engine for type templates, built from the project's ``DjangoTemplates``."""
    base = next((b.engine for b in engines.all() if isinstance(b, DjangoTemplates)), None)
    if base is None:
        return Engine(
            autoescape=autoescape,
            string_if_invalid=f"{_MISSING_OPEN}%s{_MISSING_CLOSE}",
        )
    return Engine(
        dirs=base.dirs,
        loaders=base.loaders,
        libraries=base.libraries,
        builtins=[b for b in base.builtins if b not in Engine.default_builtins],
        autoescape=autoescape,
        string_if_invalid=f"{_MISSING_OPEN}%s{_MISSING_CLOSE}",
    )


@functools.cache
def compile_template(source: str, *, autoescape: bool = False) -> Template:
    """Compile (and cache) a template string; raises ``TemplateSyntaxError``."""
    return get_engine(autoescape=autoescape).from_string(source)


@receiver(setting_changed)
def _reset_engines(*, setting: str, **kwargs: Any) -> None:
    if setting in {"TEMPLATES", "INSTALLED_APPS"}:
        get_engine.cache_clear()
        compile_template.cache_clear()
        _optional_variables.cache_clear()


@functools.cache
def _optional_variables(template: Template) -> tuple[tuple[str, Any], ...]:
    """Variables the template itself makes optional with ``|default`` filters.

    Django skips filters on a missing variable when ``string_if_invalid`` is set, so
    ``{{ note|default:"-" }}`` would count as missing. Giving such a variable the
    value the filter expects to replace makes the filter apply as the author meant.
    """
    found: dict[str, Any] = {}
    for node in template.nodelist.get_nodes_by_type(VariableNode):
        if not isinstance(node, VariableNode):
            continue
        expression = node.filter_expression
        var = expression.var
        if not isinstance(var, Variable) or not var.lookups or len(var.lookups) != 1:
            continue
        names = {getattr(func, "__name__", "") for func, _args in expression.filters}
        if "default" in names:
            found.setdefault(var.lookups[0], "")
        elif "default_if_none" in names:
            found.setdefault(var.lookups[0], None)
    return tuple(found.items())


def render_template(source: str, context: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Render a plain-text template; return the output and the missing variable names."""
    if not source:
        return "", []
    # str(): a type's strings may be lazy translations, read in the active language.
    return render_compiled(compile_template(str(source)), context)


def render_compiled(template: Template, context: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Render a compiled template; return the output and the missing variable names.

    Whether the output is escaped is the template's engine's choice
    (:func:`get_engine`), so HTML templates escape and plain text ones do not.
    """
    values = dict(_optional_variables(template))
    values.update(context)
    output = template.render(Context(values, autoescape=template.engine.autoescape))
    return output, _MISSING_RE.findall(output)


def strip_missing(output: str) -> str:
    """``output`` with the markers of missing variables removed (for previews)."""
    return _MISSING_RE.sub("", output)


def render_text(source: str, context: Mapping[str, Any], *, type_key: str, part: str) -> str:
    """Render a plain-text template; raise :class:`MissingContextError` on a missing variable."""
    output, missing = render_template(source, context)
    if missing:
        raise MissingContextError(type_key, part, missing, context.keys())
    return output


def one_line(text: str) -> str:
    """Collapse whitespace, as a title is shown on a single line."""
    return _WHITESPACE_RE.sub(" ", text).strip()


def truncate(text: str, limit: int) -> str:
    """Shorten ``text`` to at most ``limit`` characters, ending with an ellipsis if cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "\u2026"


class RecipientProbe:
    """Stands in for ``recipient`` while rendering once for everybody.

    If a template touches it in any way, the output depends on the recipient and the
    caller must render again for each one; otherwise the single output is shared.
    """

    def __init__(self) -> None:
        self.touched = False

    def _touch(self) -> str:
        self.touched = True
        return ""

    def __getattr__(self, name: str) -> Any:
        self.touched = True
        raise AttributeError(name)

    def __getitem__(self, key: Any) -> Any:
        self.touched = True
        raise KeyError(key)

    def __str__(self) -> str:
        return self._touch()

    def __bool__(self) -> bool:
        self.touched = True
        return True

    def __eq__(self, other: object) -> bool:
        self.touched = True
        return False

    __hash__ = object.__hash__
