"""``manage.py generate_vapid_keys``: its output parses back into a matching key pair and a usable channel."""

from __future__ import annotations

import ast
import io
import json
import re
import types
from typing import Any

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError, SystemCheckError
from django.test import override_settings

from django_notify.management.commands.generate_vapid_keys import PLACEHOLDER_SUBJECT, PRIVATE_KEY_ENV
from django_notify.push import vapid

BACKEND = "django_notify.backends.webpush.WebPushBackend"


def _run(*args: str, **options: Any) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("generate_vapid_keys", *args, stdout=out, stderr=err, **options)
    return out.getvalue(), err.getvalue()


def _snippet(output: str) -> str:
    """The ``"webpush": {...},`` entry, wrapped into a dict expression."""
    start = output.index('"webpush": {')
    return "{" + output[start:] + "}"


def _assert_pair(private_key: object, public_key: str) -> None:
    parsed = vapid.parse_private_key(private_key)
    assert vapid.public_key_b64(parsed) == public_key
    assert len(vapid.parse_public_key(public_key)) == 65


def test_default_output_is_a_channel_entry_with_a_matching_pair() -> None:
    output, _ = _run()

    channel = ast.literal_eval(_snippet(output))["webpush"]

    assert channel["BACKEND"] == BACKEND
    options = channel["OPTIONS"]
    _assert_pair(options["vapid_private_key"], options["vapid_public_key"])
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", options["vapid_private_key"])  # raw 32-byte scalar, base64url
    key_id = vapid.key_id(vapid.parse_public_key(options["vapid_public_key"]))
    assert f"VAPID key id {key_id}" in output


def test_without_a_subject_the_placeholder_is_refused_until_replaced() -> None:
    output, _ = _run()

    options = ast.literal_eval(_snippet(output))["webpush"]["OPTIONS"]

    assert options["vapid_subject"] == PLACEHOLDER_SUBJECT
    assert vapid.subject_problem(PLACEHOLDER_SUBJECT) is not None
    assert "# replace: mailto:you@yourdomain.com" in output


def test_the_output_warns_that_rotation_invalidates_subscriptions() -> None:
    output, _ = _run()

    assert "RFC 8292 §4.2" in output
    assert "invalidates every existing browser subscription" in " ".join(
        line.lstrip("# ") for line in output.splitlines()
    )


def test_a_valid_subject_is_used() -> None:
    output, _ = _run("--subject", "https://shop.example.com/contact")

    options = ast.literal_eval(_snippet(output))["webpush"]["OPTIONS"]

    assert options["vapid_subject"] == "https://shop.example.com/contact"
    assert vapid.VapidSigner(vapid.parse_private_key(options["vapid_private_key"]), options["vapid_subject"])


@pytest.mark.parametrize("subject", ["mailto:admin@localhost", "mailto: <ops@example.com>", "ops@example.com"])
def test_a_bad_subject_is_a_command_error(subject: str) -> None:
    with pytest.raises(CommandError, match="VAPID subject") as caught:
        _run("--subject", subject)

    assert "mailto:ops@yourdomain.com" in str(caught.value)


def test_pem_output_reads_the_key_from_the_environment() -> None:
    output, _ = _run("--pem", "--subject", "mailto:ops@example.com")

    pem = re.search(r"-----BEGIN PRIVATE KEY-----\n.+?\n-----END PRIVATE KEY-----\n", output, re.DOTALL)
    assert pem is not None
    fake_os = types.SimpleNamespace(environ={PRIVATE_KEY_ENV: pem.group(0)})
    options = eval(_snippet(output), {"os": fake_os})["webpush"]["OPTIONS"]  # as settings.py would run it

    assert options["vapid_private_key"] == pem.group(0)
    _assert_pair(options["vapid_private_key"], options["vapid_public_key"])
    assert options["vapid_subject"] == "mailto:ops@example.com"


def test_json_output_for_scripts() -> None:
    output, errors = _run("--json", "--subject", "mailto:ops@example.com")

    document = json.loads(output)

    assert set(document) == {"public_key", "private_key", "subject", "key_id"}
    _assert_pair(document["private_key"], document["public_key"])
    assert document["subject"] == "mailto:ops@example.com"
    assert document["key_id"] == vapid.key_id(vapid.parse_public_key(document["public_key"]))
    assert "invalidates every existing browser subscription" in errors


def test_json_with_pem_and_without_subject() -> None:
    document = json.loads(_run("--json", "--pem")[0])

    assert document["private_key"].startswith("-----BEGIN PRIVATE KEY-----")
    assert document["subject"] is None
    _assert_pair(document["private_key"], document["public_key"])


def test_every_run_makes_a_new_key() -> None:
    keys = {json.loads(_run("--json")[0])["private_key"] for _ in range(3)}

    assert len(keys) == 3


@override_settings(DJANGO_NOTIFY={"CHANNELS": {"webpush": {"BACKEND": "django_notify.backends.nowhere.Missing"}}})
def test_runs_while_the_channel_settings_are_still_broken(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemCheckError):
        call_command("check")

    # From the command line, where a command that requires system checks would refuse to run.
    execute_from_command_line(["manage.py", "generate_vapid_keys"])

    assert '"webpush": {' in capsys.readouterr().out
