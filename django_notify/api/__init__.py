"""The REST API: DRF mixins (:mod:`.mixins`) composed into viewsets (:mod:`.views`).

Hosts can reuse the mixins with their own authentication, permissions or
serializers; :mod:`django_notify.urls` wires the default viewsets.
"""

from __future__ import annotations
