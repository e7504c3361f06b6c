"""The one list of background jobs, by name: what services may ``defer`` and what runs on a timer.

Both backends read it: the in-process ticker of ``serve`` and Celery (a task per job, and the beat
schedule from the periodic ones). A new job registers here once and runs in either mode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

# The in-process ticker's beat; periodic jobs run every so many of its ticks.
TICK_SECONDS = 30.0


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[..., Any]  # called as func(app, **params)
    every: float | None = None  # seconds between runs, for a periodic job

    @property
    def periodic(self) -> bool:
        return self.every is not None


_REGISTRY: dict[str, Job] = {}


def register(name: str, func: Callable[..., Any], every: float | None = None) -> Job:
    """Make ``func(app, **params)`` a job called ``name``; with ``every`` (seconds) it also runs on a
    timer. Registering the same name again replaces it."""
    job = Job(name, func, every)
    _REGISTRY[name] = job
    return job


def get(name: str) -> Job | None:
    return _REGISTRY.get(name)


def jobs() -> list[Job]:
    return list(_REGISTRY.values())


def periodic_jobs() -> list[Job]:
    """The jobs on a timer, in the order they were registered (the order the ticker runs them)."""
    return [job for job in _REGISTRY.values() if job.every is not None]


def name_of(job: Callable[..., Any]) -> tuple[str, dict[str, Any]] | None:
    """The registered name and parameters of a job callable (a plain job or a ``partial`` of one)."""
    params: dict[str, Any] = {}
    func = job
    if isinstance(job, partial) and not job.args:
        func, params = job.func, dict(job.keywords)
    for entry in _REGISTRY.values():
        if entry.func is func:
            return entry.name, params
    return None


def due_on_tick(job: Job, tick: int, interval: float = TICK_SECONDS) -> bool:
    """Whether a periodic job runs on the ticker's ``tick`` (1, 2, ...): on the first tick, then every
    ``every / interval`` ticks."""
    if job.every is None:
        return False
    period = max(1, round(job.every / interval))
    return tick % period == 1 % period
