"""The Celery backend of the jobs (scaled mode): one task per registered job, beat from the registry.

Set up the way Flask's "Background Tasks with Celery" shows for an app factory: the Celery app is
made in the factory from the Flask config and every task runs inside the Flask app's context.
Tasks are acknowledged late (after they ran), taken one at a time, given back to the broker when
their worker dies, and retried with exponential backoff; one that is out of retries is recorded in
the failures table for admins. Jobs work from rows (outbox messages, due steps, pending photos), so
running a task twice does no harm.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init
from flask import Flask

from portal.db import get_engine
from portal.jobs import registry
from portal.logs import bind_request_id, unbind_request_id

log = logging.getLogger("portal.jobs")
TASK_PREFIX = "portal.jobs."
REQUEST_ID = "_request_id"  # the task keyword that carries the id of the request that queued it


def task_name(job: str) -> str:
    return TASK_PREFIX + job


def celery_config(config: dict[str, Any] | Any) -> dict[str, Any]:
    """Celery settings from the portal's; ``CELERY`` in the Flask config overrides any of them."""
    visibility = int(config.get("JOBS_VISIBILITY_TIMEOUT") or 3600)
    settings: dict[str, Any] = {
        "broker_url": config["BROKER_URL"],
        "broker_connection_retry_on_startup": True,
        # A task a dead worker held goes back to the queue once ``visibility`` has passed; the scan that
        # finds it runs every tenth of that (at most a minute) instead of Kombu's default of about 100 s.
        "broker_transport_options": {
            "visibility_timeout": visibility,
            "unacked_restore_interval": max(1, min(60, visibility // 10)),
            "unacked_restore_throttle": 1,
        },
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": config.get("JOBS_QUEUE") or "portal",
        "worker_hijack_root_logger": False,  # the portal's own log format (plain or JSON) stays
        "timezone": "UTC",
        "enable_utc": True,
        "beat_schedule": beat_schedule(),
        "beat_schedule_filename": str(Path(config["INSTANCE_PATH"]) / "celerybeat-schedule"),
    }
    settings.update(config.get("CELERY") or {})
    return settings


def beat_schedule() -> dict[str, dict[str, Any]]:
    """Every periodic job of the registry; a run not picked up before the next is due expires."""
    return {
        job.name: {"task": task_name(job.name), "schedule": job.every, "options": {"expires": job.every}}
        for job in registry.periodic_jobs()
        if job.every is not None
    }


class PortalCelery(Celery):
    def send_job(self, name: str, params: dict[str, Any], request_id: str | None) -> None:
        kwargs = dict(params)
        if request_id is not None:
            kwargs[REQUEST_ID] = request_id
        self.send_task(task_name(name), kwargs=kwargs)


def celery_init_app(app: Flask) -> PortalCelery:
    from portal.jobs import _record, run_job  # noqa: PLC0415 - the package imports this module lazily

    max_retries = int(app.config.get("JOBS_MAX_RETRIES", 5))
    backoff = int(app.config.get("JOBS_RETRY_BACKOFF", 10))
    backoff_max = int(app.config.get("JOBS_RETRY_BACKOFF_MAX", 600))

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            with app.app_context():
                return self.run(*args, **kwargs)

        def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:  # type: ignore[no-untyped-def]
            """Out of retries (or not retryable): keep it for admins, never drop it silently."""
            params = {k: v for k, v in (kwargs or {}).items() if k != REQUEST_ID}
            job = self.name.removeprefix(TASK_PREFIX)
            log.error("task %s failed after %d attempt(s): %s", job, self.request.retries + 1, type(exc).__name__)
            _record(app, job, params, exc, attempts=self.request.retries + 1)

    celery = PortalCelery(app.import_name, task_cls=FlaskTask)
    celery.config_from_object(celery_config(app.config))

    def make_task(job: registry.Job) -> None:
        def run(self: Task, **kwargs: Any) -> Any:
            token = bind_request_id(kwargs.pop(REQUEST_ID, None))  # this task's log lines carry the request's id
            try:
                log.info("task %s started (attempt %d)", job.name, self.request.retries + 1)
                return run_job(app, partial(job.func, **kwargs) if kwargs else job.func)
            finally:
                unbind_request_id(token)

        run.__name__ = job.name
        celery.task(
            name=task_name(job.name),
            shared=False,  # this app's tasks close over this Flask app: never lent to another Celery app
            bind=True,
            autoretry_for=(Exception,),
            # A periodic job is not retried: its next run is the retry (a retry would outlive the
            # run's expiry and vanish); each failure counts on its open failure record instead.
            max_retries=0 if job.periodic else max_retries,
            retry_backoff=backoff,
            retry_backoff_max=backoff_max,
            retry_jitter=False,
        )(run)

    for job in registry.jobs():
        make_task(job)
    celery.set_default()
    app.extensions["celery"] = celery
    app.extensions["portal.celery"] = celery

    @worker_process_init.connect(weak=False)
    def _fresh_connections(**_: Any) -> None:
        # A forked worker process must not share the parent's database connections.
        get_engine(app).dispose(close=False)

    return celery
