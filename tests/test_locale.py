"""The shipped translations: complete, compiled, current, and the ones Django uses.

Each language in ``django_notify/locale`` has a ``django.po`` with every string of the
package translated (no fuzzy entry, placeholders kept) and the ``django.mo`` compiled from
it. The catalog is current when ``makemessages`` run on the package today finds exactly
its msgids. To update after changing strings, from ``django_notify/``::

    django-admin makemessages -l de -l fr --no-obsolete --add-location file
    django-admin compilemessages -l de -l fr
"""

from __future__ import annotations

import ast
import gettext
import re
import shutil
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.apps import apps
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from django_notify import delivery, notify
from django_notify.models import Delivery, Notification

PACKAGE = Path(__file__).resolve().parent.parent / "django_notify"
LOCALE = PACKAGE / "locale"
LANGUAGES = ("de", "fr")
PLURAL_FORMS = {"de": "nplurals=2; plural=(n != 1);", "fr": "nplurals=2; plural=(n > 1);"}

#: A %-format placeholder (``%(name)s``, ``%d``, ``%%``), as Python's % operator reads them.
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]")


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # singular entries: {0: ...}
    flags: set[str] = field(default_factory=set)
    obsolete: bool = False

    @property
    def key(self) -> tuple[str | None, str, str | None]:
        return (self.msgctxt, self.msgid, self.msgid_plural)


def parse_po(path: Path) -> list[Entry]:
    """The entries of a .po file, the header (msgid ``""``) first; enough of the format for ours."""
    entries: list[Entry] = []
    entry, target = Entry(), ""
    keyword = re.compile(r"(msgctxt|msgid_plural|msgid|msgstr)(?:\[(\d+)\])?\s+(\".*\")$")

    def finish() -> None:
        nonlocal entry
        if target:
            entries.append(entry)
        entry = Entry()

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#~"):
            entry.obsolete = True
        elif line.startswith("#,"):
            entry.flags.update(flag.strip() for flag in line[2:].split(","))
        elif line.startswith("#") or not line.strip():
            if target.startswith("msgstr"):
                finish()
                target = ""
        elif match := keyword.match(line):
            name, index, text = match.groups()
            if name in ("msgctxt", "msgid") and target.startswith("msgstr"):
                finish()
            value = ast.literal_eval(text)
            if name == "msgstr":
                target = f"msgstr{int(index or 0)}"
                entry.msgstr[int(index or 0)] = value
            else:
                target = name
                setattr(entry, name, value)
        else:  # a continuation line: appended to what the last keyword started
            value = ast.literal_eval(line)
            if target.startswith("msgstr"):
                entry.msgstr[int(target[6:])] += value
            else:
                setattr(entry, target, getattr(entry, target) + value)
    finish()
    return entries


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def catalog(language: str) -> list[Entry]:
    return parse_po(LOCALE / language / "LC_MESSAGES" / "django.po")


def header_fields(entries: list[Entry]) -> dict[str, str]:
    header = entries[0]
    assert header.msgid == "" and header.msgctxt is None, "the header comes first"
    return dict(line.split(": ", 1) for line in header.msgstr[0].splitlines() if ": " in line)


def test_every_shipped_language_has_a_catalog():
    shipped = sorted(path.parent.parent.name for path in LOCALE.glob("*/LC_MESSAGES/django.po"))
    assert shipped == sorted(LANGUAGES)


# The catalogs --------------------------------------------------------------------------


@pytest.mark.parametrize("language", LANGUAGES)
def test_header(language):
    entries = catalog(language)
    fields = header_fields(entries)
    assert "fuzzy" not in entries[0].flags
    assert fields["Project-Id-Version"] == "django-notify-kit"
    assert fields["Language"] == language
    assert fields["Content-Type"] == "text/plain; charset=UTF-8"
    assert fields["Plural-Forms"] == PLURAL_FORMS[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_string_is_translated_and_none_is_fuzzy(language):
    messages = catalog(language)[1:]
    assert messages
    untranslated = [m.msgid for m in messages if not all(m.msgstr.values())]
    fuzzy = [m.msgid for m in messages if "fuzzy" in m.flags]
    obsolete = [m.msgid for m in messages if m.obsolete]
    wrong_forms = [m.msgid for m in messages if m.msgid_plural is not None and sorted(m.msgstr) != [0, 1]]
    assert (untranslated, fuzzy, obsolete, wrong_forms) == ([], [], [], [])
    keys = [m.key for m in messages]
    assert len(keys) == len(set(keys)), "a msgid twice"


@pytest.mark.parametrize("language", LANGUAGES)
def test_placeholders_are_kept(language):
    wrong = []
    for message in catalog(language)[1:]:
        for index, text in message.msgstr.items():
            # The singular may leave out the count ("One item"), if the English does.
            source = message.msgid if message.msgid_plural is None or index == 0 else message.msgid_plural
            expected = {frozenset(placeholders(source)), frozenset(placeholders(message.msgid_plural or source))}
            if frozenset(placeholders(text)) not in expected:
                wrong.append((message.msgid, index, text))
            if message.msgid_plural is None and "python-format" not in message.flags and "%" in text:
                # Without python-format nothing is %-formatted: the text must not look like it is.
                assert placeholders(text) == placeholders(message.msgid), (message.msgid, text)
    assert wrong == []


@pytest.mark.parametrize("language", LANGUAGES)
def test_compiled_catalog_matches_the_po(language):
    entries = catalog(language)
    path = LOCALE / language / "LC_MESSAGES" / "django.mo"
    data = path.read_bytes()
    magic, _revision, count = struct.unpack("<3I", data[:12])
    assert magic == 0x950412DE, "a little-endian GNU .mo"
    assert count == len(entries), "the .mo holds other strings than the .po: run compilemessages"
    with path.open("rb") as file:
        compiled = gettext.GNUTranslations(file)
    assert compiled.info()["plural-forms"] == PLURAL_FORMS[language]
    stale = []
    for message in entries[1:]:
        if message.msgid_plural is None:
            got = {
                0: compiled.pgettext(message.msgctxt, message.msgid)
                if message.msgctxt
                else compiled.gettext(message.msgid)
            }
        else:
            # n = 1 selects form 0 and n = 2 form 1 in both languages.
            got = {index: compiled.ngettext(message.msgid, message.msgid_plural, n) for index, n in ((0, 1), (1, 2))}
        if got != message.msgstr:
            stale.append(message.msgid)
    assert stale == [], "run compilemessages"


# Current: what makemessages finds today -------------------------------------------------


@pytest.mark.skipif(
    shutil.which("xgettext") is None or shutil.which("msgfmt") is None,
    reason="GNU gettext (xgettext, msgfmt) is not installed: makemessages cannot run",
)
def test_catalog_has_every_translatable_string_of_the_package(tmp_path, monkeypatch):
    # makemessages scans the current directory and writes temporary files beside the
    # templates: it runs on a copy, with an empty locale directory of its own.
    copy = tmp_path / "django_notify"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "locale"))
    (copy / "locale").mkdir()
    monkeypatch.chdir(copy)
    call_command("makemessages", locale=["de"], add_location="file", verbosity=0)

    found = {entry.key for entry in parse_po(copy / "locale" / "de" / "LC_MESSAGES" / "django.po")[1:]}
    assert found, "makemessages found no string at all"
    for language in LANGUAGES:
        shipped = {entry.key for entry in catalog(language)[1:]}
        missing, extra = sorted(found - shipped, key=str), sorted(shipped - found, key=str)
        assert (missing, extra) == ([], []), f"{language}: run makemessages, translate, compilemessages"


# Django uses them --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("de", ("Benachrichtigungen", "Benachrichtigung", "Zustellungen", "Empfänger")),
        ("fr", ("Notifications", "notification", "envois", "destinataire")),
    ],
)
def test_models_and_app_are_translated(language, expected):
    with translation.override(language):
        got = (
            str(apps.get_app_config("django_notify").verbose_name),
            str(Notification._meta.verbose_name),
            str(Delivery._meta.verbose_name_plural),
            str(Notification._meta.get_field("recipient").verbose_name),
        )
    assert got == expected


@pytest.mark.parametrize(
    ("language", "heading"),
    [("de", "Dieser Abmeldelink ist ungültig"), ("fr", "Ce lien de désabonnement n’est pas valide")],
)
def test_unsubscribe_page_is_translated(db, client, language, heading):
    url = reverse("django_notify:unsubscribe", args=["not-a-token"])
    with translation.override(language):
        response = client.get(url)
    assert response.status_code == 400
    content = response.content.decode()
    assert f'<html lang="{language}">' in content
    assert heading in content


def recipient_language(user: Any) -> str:
    """``RECIPIENT_LANGUAGE``: the username says it."""
    return user.username.split("-")[0]


@pytest.mark.django_db
def test_email_layout_is_in_the_recipients_language(settings, user_factory):
    settings.DJANGO_NOTIFY = {
        "CHANNELS": {
            "in_app": {"BACKEND": "django_notify.backends.in_app.InAppBackend"},
            "email": {
                "BACKEND": "django_notify.backends.email.EmailBackend",
                "OPTIONS": {"backend": "django.core.mail.backends.locmem.EmailBackend"},
            },
        },
        "DELIVERY_MODE": "manual",
        "BASE_URL": "https://notify.example",
        "SITE_NAME": "Notify Example",
        "RECIPIENT_LANGUAGE": "tests.test_locale.recipient_language",
    }
    users = [user_factory(username=f"{language}-reader") for language in LANGUAGES]
    notify("order_placed", users, context={"order_number": "A-7", "total": "9.90"}, channels=["email"])
    assert delivery.deliver_due().sent == 2

    bodies = {message.to[0]: message.body for message in mail.outbox}
    german, french = (bodies[user.email] for user in users)
    assert "Sie erhalten diese E-Mail aufgrund Ihrer Benachrichtigungseinstellungen auf Notify Example." in german
    assert "Abmelden: https://notify.example/" in german
    assert "Vous recevez cet e-mail en raison de vos préférences de notification sur Notify Example." in french
    assert "Se désabonner : https://notify.example/" in french
