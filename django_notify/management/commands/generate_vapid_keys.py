"""``manage.py generate_vapid_keys``: make a VAPID key pair and print the Web Push channel settings."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from django_notify.push import vapid

#: Fails ``subject_problem()`` on purpose, so a snippet pasted unedited is refused at start-up.
PLACEHOLDER_SUBJECT = "mailto:CHANGE-ME@your-domain.invalid"
PRIVATE_KEY_ENV = "NOTIFY_VAPID_PRIVATE_KEY"
ROTATION_WARNING = (
    "Replacing these keys later invalidates every existing browser subscription (RFC 8292 §4.2): "
    "each user has to subscribe again. Generate them once per deployment and keep them."
)


class Command(BaseCommand):
    help = (
        "Generate a VAPID key pair for the Web Push channel and print the channel settings to paste into "
        "DJANGO_NOTIFY['CHANNELS']. --subject is the contact push services may use: 'mailto:you@yourdomain.com' "
        f"or 'https://yourdomain.com/contact'. Without it the snippet carries the placeholder {PLACEHOLDER_SUBJECT}, "
        "which the channel refuses until you replace it. " + ROTATION_WARNING
    )
    # The command must work while the Web Push channel is still unconfigured or broken.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--subject", help="Contact URI for push services: mailto:you@yourdomain.com or https://yourdomain.com."
        )
        parser.add_argument(
            "--pem",
            action="store_true",
            help=f"Print the private key as PKCS#8 PEM, read by the snippet from the {PRIVATE_KEY_ENV} variable.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print JSON {public_key, private_key, subject, key_id} for scripts."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        subject = options["subject"]
        if subject is not None:
            problem = vapid.subject_problem(subject)
            if problem:
                raise CommandError(problem)
        key = vapid.generate_private_key()
        public_key = vapid.public_key_b64(key)
        private_key = vapid.private_key_pem(key) if options["pem"] else vapid.private_key_b64(key)
        key_id = vapid.key_id(vapid.parse_public_key(public_key))
        if options["json"]:
            document = {"public_key": public_key, "private_key": private_key, "subject": subject, "key_id": key_id}
            self.stdout.write(json.dumps(document, indent=2))
            self.stderr.write(ROTATION_WARNING)
        elif options["pem"]:
            self.stdout.write(self._pem_output(public_key, private_key, subject, key_id))
        else:
            self.stdout.write(self._inline_output(public_key, private_key, subject, key_id))

    def _inline_output(self, public_key: str, private_key: str, subject: str | None, key_id: str) -> str:
        return "\n".join(
            [
                *self._preamble(key_id),
                "# vapid_private_key is a secret: in production load it from the environment or a secrets manager.",
                *self._snippet(public_key, json.dumps(private_key), subject),
            ]
        )

    def _pem_output(self, public_key: str, private_key_pem: str, subject: str | None, key_id: str) -> str:
        return "\n".join(
            [
                "# Private key (PKCS#8 PEM). Keep it secret: put it in the environment variable",
                f"# {PRIVATE_KEY_ENV}, or in a file only the application can read and load it from there.",
                private_key_pem.rstrip("\n"),
                "",
                *self._preamble(key_id),
                "# The snippet reads the key with os.environ: settings.py needs `import os`.",
                *self._snippet(public_key, f'os.environ["{PRIVATE_KEY_ENV}"]', subject),
            ]
        )

    def _preamble(self, key_id: str) -> list[str]:
        return [
            f"# Web Push channel for DJANGO_NOTIFY['CHANNELS'] (VAPID key id {key_id}).",
            *(f"# {line}" for line in textwrap.wrap(ROTATION_WARNING, 100)),
        ]

    def _snippet(self, public_key: str, private_key_expression: str, subject: str | None) -> list[str]:
        if subject is None:
            subject_line = (
                f'"vapid_subject": "{PLACEHOLDER_SUBJECT}",  '
                "# replace: mailto:you@yourdomain.com or https://yourdomain.com/contact"
            )
        else:
            subject_line = f'"vapid_subject": {json.dumps(subject)},'
        return [
            '"webpush": {',
            '    "BACKEND": "django_notify.backends.webpush.WebPushBackend",',
            '    "OPTIONS": {',
            f'        "vapid_public_key": "{public_key}",',
            f'        "vapid_private_key": {private_key_expression},',
            f"        {subject_line}",
            "    },",
            "},",
        ]
