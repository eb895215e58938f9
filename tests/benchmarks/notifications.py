"""The notification type of the delivery benchmark (discovered when ``tests.benchmarks``
is an installed app, as in ``q_settings``; the test suite does not install it)."""

from __future__ import annotations

from django_notify import NotificationType, registry

BENCH_TYPE = "bench_delivery"

if BENCH_TYPE not in registry:
    registry.register(
        NotificationType(
            key=BENCH_TYPE,
            category="orders",
            title="Order {{ number }} is ready",
            body="Table {{ table }} can collect order {{ number }}.",
            channels=["in_app", "sink"],
        )
    )
