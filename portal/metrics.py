"""Prometheus metrics: what the process counts as it works, and what the data says at scrape time.

Request and job metrics live in this process (or, under gunicorn with ``PROMETHEUS_MULTIPROC_DIR``
set before start, in files every worker writes and the scrape adds up). Backlogs and states are
counted from the database when ``/metrics`` is read, so every worker answers the same.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from portal.db.models import EscalationDue, OutboxMessage, Refund
from portal.domain.states import RefundStatus, StepStatus

log = logging.getLogger("portal.metrics")

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REQUEST_SECONDS = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer a request, by Flask endpoint, method and status class.",
    ["endpoint", "method", "status"],
)
JOB_RUNS = Counter("portal_job_runs", "Background jobs run, by task.", ["task"])
JOB_FAILURES = Counter("portal_job_failures", "Background jobs that raised, by task.", ["task"])
JOB_SECONDS = Histogram(
    "portal_job_duration_seconds",
    "Time a background job took, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def observe_request(endpoint: str | None, method: str, status: int, seconds: float) -> None:
    # Endpoint names and status classes keep the label set small whatever paths clients invent.
    REQUEST_SECONDS.labels(
        endpoint=endpoint or "unmatched",
        method=method if method in METHODS else "other",
        status=f"{status // 100}xx",
    ).observe(seconds)


def observe_job(task: str, seconds: float, failed: bool) -> None:
    JOB_RUNS.labels(task=task).inc()
    if failed:
        JOB_FAILURES.labels(task=task).inc()
    JOB_SECONDS.labels(task=task).observe(seconds)


class DataCollector(Collector):
    """Gauges read from the database at scrape time with cheap aggregate queries."""

    def __init__(self, factory: sessionmaker[Session]):
        self.factory = factory

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("portal_metrics_data_up", "1 when the data metrics below could be read.")
        try:
            with self.factory() as session:
                families = list(self._read(session))
        except Exception as exc:  # the database being down must not hide the process metrics
            log.warning("metrics: could not read the data gauges: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self, session: Session) -> Iterator[Metric]:
        backlog = session.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.sent_at.is_(None)))
        outbox = GaugeMetricFamily("portal_outbox_backlog", "Outbox messages not sent yet.")
        outbox.add_metric([], backlog or 0)
        yield outbox

        counts: dict[str, Any] = {state.value: 0 for state in RefundStatus}
        for state, count in session.execute(select(Refund.status, func.count()).group_by(Refund.status)):
            counts[state] = count
        refunds = GaugeMetricFamily("portal_refunds", "Refunds by state.", labels=["state"])
        for state, count in sorted(counts.items()):
            refunds.add_metric([state], count)
        yield refunds

        fired = CounterMetricFamily(
            "portal_escalations_fired", "Escalation steps fired by the SLA sweep, by action.", labels=["action"]
        )
        rows = session.execute(
            select(EscalationDue.action, func.count())
            .where(EscalationDue.status == StepStatus.DONE.value)
            .group_by(EscalationDue.action)
        )
        for action, count in sorted(rows):
            fired.add_metric([action], count)
        yield fired


class _ProcessCollector(Collector):
    """This process's own metrics (the default registry), for a registry built per scrape."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def render(factory: sessionmaker[Session]) -> tuple[bytes, str]:
    """The text exposition: every worker's metrics when multiprocess, plus the data gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if multiprocess_dir():
        MultiProcessCollector(registry)
    else:
        registry.register(_ProcessCollector())
    registry.register(DataCollector(factory))
    return generate_latest(registry), CONTENT_TYPE_LATEST
