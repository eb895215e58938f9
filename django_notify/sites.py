"""The site's public address and name, for links and text that leave the site (emails).

A worker has no request to build absolute URLs from, so they come from
``DJANGO_NOTIFY["BASE_URL"]``, or else from the current ``Site`` of
``django.contrib.sites`` (over https). ``manage.py check`` reports an email channel
with neither (``django_notify.E050``).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from django.apps import apps
from django.conf import settings

from django_notify.conf import notify_settings


def _current_site() -> object | None:
    if not apps.is_installed("django.contrib.sites") or not getattr(settings, "SITE_ID", None):
        return None
    from django.contrib.sites.models import Site

    try:
        return Site.objects.get_current()
    except Site.DoesNotExist:
        return None


def base_url() -> str:
    """``"https://example.com"``: scheme and host, without a trailing slash; ``""`` if unknown."""
    configured = notify_settings.BASE_URL
    if configured:
        return configured
    site = _current_site()
    domain = getattr(site, "domain", "")
    return f"https://{domain}" if domain else ""


def absolute_url(url: str) -> str:
    """``url`` made absolute against :func:`base_url`; absolute http(s) URLs are kept.

    Any other scheme (``javascript:``, ``data:``, ``mailto:``) gives ``""``: what
    this makes is a link in an email, which must only ever open a web page.
    """
    if not url:
        return ""
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return url
    if scheme:
        return ""
    base = base_url()
    return urljoin(base + "/", url) if base else url


def site_name() -> str:
    """``SITE_NAME``, else the current ``Site``'s name, else the host of :func:`base_url`."""
    if notify_settings.SITE_NAME:
        return notify_settings.SITE_NAME
    site = _current_site()
    name = getattr(site, "name", "")
    if name:
        return str(name)
    return urlsplit(base_url()).hostname or ""


def mail_domain() -> str:
    """The domain of ``Message-ID`` headers: the site's host, else Django's ``DNS_NAME``."""
    host = urlsplit(base_url()).hostname
    if host:
        return host
    from django.core.mail.utils import DNS_NAME

    return str(DNS_NAME)
