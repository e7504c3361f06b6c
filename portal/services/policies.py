"""The return policy as numbered versions in the database; exactly one is published and active.

Every web host and worker reads the published version from the database and keeps it parsed per
process: each read costs one indexed query (``policy_version`` where published) that compares the
published id and checksum with the cached ones, so a publish anywhere is seen by the next request
everywhere. ``POLICY_REFRESH_SECONDS`` can space those checks out.

Where the text comes from (``POLICY_SOURCE``):

- ``file`` (the embedded default): the instance file (``POLICY_PATH``) mirrors the published
  version. On first start (no versions yet) the file, or the packaged default when there is no
  file, becomes version 1 and is published. Publishing or rolling back rewrites the file. Editing
  the file by hand still works: text that is not yet a version is checked, saved as a new version
  and published; text that is an older version's is put back to the published one (roll back
  with ``policy rollback`` instead); text that does not pass the check is left alone and ignored
  (logged), the published version stays active.
- ``database`` (scaled mode): nothing is read from or written to a disk. With no versions yet the
  packaged default becomes version 1.

Every change (a new version, a publish, a rollback) writes an audit log row.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from portal.db.models import AuditLog, PolicyVersion, StaffUser
from portal.domain.errors import Conflict, InvalidInput, NotFound
from portal.domain.policy import Policy, load_policy
from portal.domain.policy_text import PolicyProblem, check_policy_text, checksum
from portal.domain.text import N_

log = logging.getLogger(__name__)

SOURCES = ("file", "database")
_ATTEMPTS = 3


def default_policy_text() -> str:
    return files("portal").joinpath("default_policy.toml").read_text(encoding="utf-8")


def policy_from_file(path: str | os.PathLike[str]) -> Policy:
    return load_policy(Path(path).read_text(encoding="utf-8"))


class InvalidPolicy(InvalidInput):
    """Policy text that does not pass the check; ``problem`` carries the message and line."""

    def __init__(self, problem: PolicyProblem) -> None:
        if problem.line:
            super().__init__(N_("Line %(line)s: %(problem)s"), line=problem.line, problem=problem.message)
        else:
            super().__init__(N_("%(problem)s"), problem=problem.message)
        self.problem = problem


@dataclass(frozen=True)
class ActivePolicy:
    """The published version, parsed: decisions store ``id`` next to the policy's own label."""

    id: int
    number: int
    checksum: str
    policy: Policy


@dataclass(frozen=True)
class PolicySettings:
    mirror: Path | None  # the instance file in ``file`` mode; None in ``database`` mode
    refresh_seconds: float

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> PolicySettings:
        scaled = str(config.get("JOBS_MODE") or "").strip().lower() == "celery"
        source = str(config.get("POLICY_SOURCE") or ("database" if scaled else "file")).strip().lower()
        if source not in SOURCES:
            raise ValueError(f"POLICY_SOURCE must be one of {', '.join(SOURCES)} (got {source!r})")
        mirror = Path(config["POLICY_PATH"]) if source == "file" and config.get("POLICY_PATH") else None
        return cls(mirror, float(config.get("POLICY_REFRESH_SECONDS") or 0))


# --- the active policy, per process -----------------------------------------------------------

_lock = threading.Lock()
# engine -> (checked at, published): one cache per app, as if each app were its own process
_active: weakref.WeakKeyDictionary[Engine, tuple[float, ActivePolicy]] = weakref.WeakKeyDictionary()
_file_seen: dict[str, tuple[int, int]] = {}  # mirror path -> (mtime_ns, size) already handled


# Asked on every request that applies the policy: built once (building it costs more than running it).
_PUBLISHED = select(PolicyVersion.id, PolicyVersion.checksum).where(PolicyVersion.published.is_(True))


def active_policy(session: Session, config: Mapping[str, Any]) -> Policy:
    """The published policy (see ``published_policy``)."""
    return published_policy(session, config).policy


def published_policy(session: Session, config: Mapping[str, Any]) -> ActivePolicy:
    """The published version, from this process's cache when the database still publishes it.

    Creates version 1 on first use and, in ``file`` mode, takes in a hand edit of the instance
    file first; those writes go through a session of their own, never the caller's.
    """
    settings = PolicySettings.from_config(config)
    key = session.get_bind().engine
    now = time.monotonic()
    with _lock:
        cached = _active.get(key)
    if cached and settings.refresh_seconds and now - cached[0] < settings.refresh_seconds:
        return cached[1]
    if settings.mirror is not None:
        _take_in_file(session, settings.mirror)
    row = session.execute(_PUBLISHED).one_or_none()
    if row is None:
        _bootstrap(session, settings.mirror)
        row = session.execute(_PUBLISHED).one()
    if cached and (cached[1].id, cached[1].checksum) == (row.id, row.checksum):
        active = cached[1]
    else:
        version = session.get(PolicyVersion, row.id, populate_existing=True)
        assert version is not None
        active = ActivePolicy(version.id, version.number, version.checksum, load_policy(version.source))
    with _lock:
        _active[key] = (now, active)
    return active


def _own_session(session: Session) -> Session:
    return Session(bind=session.get_bind(), expire_on_commit=False)


def _bootstrap(session: Session, mirror: Path | None) -> None:
    """Version 1 from the instance file (or the packaged default), published; harmless when another
    process does the same at the same moment."""
    text, origin, note = default_policy_text(), "default", "packaged default policy"
    if mirror is not None and mirror.exists():
        candidate = mirror.read_text(encoding="utf-8")
        _, problem = check_policy_text(candidate)
        if problem is None:
            text, origin, note = candidate, "file", f"imported from {mirror.name} on first start"
        else:
            log.warning("policy file %s not used (%s); starting from the default policy", mirror, problem)
    with _own_session(session) as own:
        if own.scalar(select(PolicyVersion.id).where(PolicyVersion.published.is_(True))) is not None:
            return
        try:
            version = _add_version(own, text, None, note, origin)
            _publish(own, version, None, "publish_policy", "first start")
            own.commit()
        except IntegrityError:
            own.rollback()  # someone else published version 1 first
            return
    if mirror is not None:
        _write_mirror(mirror, text)


def _take_in_file(session: Session, mirror: Path) -> None:
    """Publish a hand edit of the instance file (see the module docstring)."""
    try:
        stat = mirror.stat()
    except FileNotFoundError:
        return
    path_key = str(mirror.resolve())
    seen = (stat.st_mtime_ns, stat.st_size)
    with _lock:
        if _file_seen.get(path_key) == seen:
            return
    text = mirror.read_text(encoding="utf-8")
    digest = checksum(text)
    known = session.execute(
        select(PolicyVersion.id, PolicyVersion.published).where(PolicyVersion.checksum == digest)
    ).all()
    published = session.scalar(select(PolicyVersion).where(PolicyVersion.published.is_(True)))
    if published is None:
        return  # first start: the bootstrap imports the file
    if any(row.published for row in known):
        pass
    elif known:
        log.warning("policy file %s holds an older version; put back the published one", mirror)
        _write_mirror(mirror, published.source)
    else:
        _, problem = check_policy_text(text)
        if problem is not None:
            log.warning("policy file %s not used (%s); version %s stays published", mirror, problem, published.number)
        else:
            with _own_session(session) as own:
                try:
                    version = _add_version(own, text, None, f"edited in {mirror.name}", "file")
                    _publish(own, version, None, "publish_policy", f"edited in {mirror.name}")
                    own.commit()
                except IntegrityError:
                    own.rollback()  # another process took the same edit in
    try:
        stat = mirror.stat()
    except FileNotFoundError:
        return
    with _lock:
        _file_seen[path_key] = (stat.st_mtime_ns, stat.st_size)


def _write_mirror(mirror: Path, text: str) -> None:
    mirror.parent.mkdir(parents=True, exist_ok=True)
    tmp = mirror.with_name(f".{mirror.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, mirror)
    stat = mirror.stat()
    with _lock:
        _file_seen[str(mirror.resolve())] = (stat.st_mtime_ns, stat.st_size)


# --- versions ----------------------------------------------------------------------------------


def version_data(version: PolicyVersion) -> dict[str, Any]:
    return {"number": version.number, "label": version.label, "checksum": version.checksum}


def _audit(
    session: Session,
    actor: StaffUser | None,
    action: str,
    target: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    detail: str,
) -> None:
    session.add(
        AuditLog(
            actor_id=actor.id if actor is not None else None,
            action=action,
            target=target,
            detail=detail if actor is not None or not detail else f"{detail} (no signed-in admin)",
            before=before,
            after=after,
        )
    )


def _add_version(session: Session, text: str, actor: StaffUser | None, note: str, origin: str) -> PolicyVersion:
    policy, problem = check_policy_text(text)
    if problem is not None:
        raise InvalidPolicy(problem)
    assert policy is not None
    number = (session.scalar(select(func.max(PolicyVersion.number))) or 0) + 1
    version = PolicyVersion(
        number=number,
        label=policy.version[:64],
        source=text,
        checksum=checksum(text),
        origin=origin,
        note=note.strip()[:500],
        created_by_id=actor.id if actor is not None else None,
        created_at=datetime.now(UTC),
        published=False,
    )
    session.add(version)
    session.flush()
    _audit(session, actor, "create_policy_version", f"policy_version:{number}", None, version_data(version), note)
    return version


def _publish(session: Session, version: PolicyVersion, actor: StaffUser | None, action: str, detail: str) -> None:
    before = session.scalar(select(PolicyVersion).where(PolicyVersion.published.is_(True)))
    if before is not None and before.id == version.id:
        raise InvalidInput(N_("Version %(number)s is already the published one."), number=version.number)
    old = version_data(before) if before is not None else None
    session.execute(
        update(PolicyVersion).where(PolicyVersion.published.is_(True)).values(published=False),
        execution_options={"synchronize_session": "fetch"},
    )
    session.flush()
    version.published = True
    version.published_at = datetime.now(UTC)
    version.published_by_id = actor.id if actor is not None else None
    session.flush()
    _audit(session, actor, action, f"policy_version:{version.number}", old, version_data(version), detail)


def create_version(
    session: Session, text: str, actor: StaffUser | None, note: str = "", origin: str = "admin"
) -> PolicyVersion:
    """Save policy text as the next numbered version, unpublished (a draft). Raises ``InvalidPolicy``
    with the problem and its line when the text does not pass the check; nothing is saved then."""
    for attempt in range(_ATTEMPTS):
        try:
            version = _add_version(session, text, actor, note, origin)
            session.commit()
            return version
        except IntegrityError:  # two saves took the same number: take the next one
            session.rollback()
            if attempt == _ATTEMPTS - 1:
                raise Conflict() from None
    raise AssertionError("unreachable")


def publish_version(
    session: Session,
    version: PolicyVersion,
    actor: StaffUser | None,
    config: Mapping[str, Any],
    *,
    rollback: bool = False,
) -> PolicyVersion:
    """Make ``version`` the active policy everywhere (audited as a publish, or as a rollback when it
    goes back to an older one). Two publishes at the same moment: one wins, the other gets
    ``Conflict``. In ``file`` mode the instance file is rewritten afterwards."""
    settings = PolicySettings.from_config(config)
    try:
        _publish(
            session,
            version,
            actor,
            "rollback_policy" if rollback else "publish_policy",
            "rolled back" if rollback else "",
        )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(N_("Another version was published at the same moment. Reload the page and try again.")) from None
    if settings.mirror is not None:
        _write_mirror(settings.mirror, version.source)
    return version


def rollback_policy(
    session: Session, actor: StaffUser | None, config: Mapping[str, Any], number: int | None = None
) -> PolicyVersion:
    """Publish an older version again: ``number``, or the one published before the current one."""
    current = session.scalar(select(PolicyVersion).where(PolicyVersion.published.is_(True)))
    target: PolicyVersion | None
    if number is not None:
        target = version_by_number(session, number)
    else:
        target = session.scalar(
            select(PolicyVersion)
            .where(PolicyVersion.published.is_(False), PolicyVersion.published_at.is_not(None))
            .order_by(PolicyVersion.published_at.desc(), PolicyVersion.id.desc())
            .limit(1)
        )
        if target is None:
            raise InvalidInput(N_("No earlier version was ever published; there is nothing to roll back to."))
    if current is not None and target.id == current.id:
        raise InvalidInput(N_("Version %(number)s is already the published one."), number=target.number)
    return publish_version(session, target, actor, config, rollback=True)


def version_by_number(session: Session, number: int) -> PolicyVersion:
    version = session.scalar(select(PolicyVersion).where(PolicyVersion.number == number))
    if version is None:
        raise NotFound(N_("There is no policy version %(number)s."), number=number)
    return version


def published_version(session: Session) -> PolicyVersion | None:
    return session.scalar(select(PolicyVersion).where(PolicyVersion.published.is_(True)))


def list_versions(session: Session) -> list[PolicyVersion]:
    """Every version, newest first."""
    return list(session.scalars(select(PolicyVersion).order_by(PolicyVersion.number.desc())))


def import_policy(
    session: Session, text: str, actor: StaffUser | None, config: Mapping[str, Any], *, publish: bool, note: str = ""
) -> PolicyVersion:
    """A TOML file taken in as the next version (``InvalidPolicy`` when it does not pass the check),
    published at once when asked."""
    version = create_version(session, text, actor, note, origin="import")
    if publish:
        publish_version(session, version, actor, config)
    return version


def forget_cache() -> None:
    """Drop this process's cached policy and file state (tests, and after a fork)."""
    with _lock:
        _active.clear()
        _file_seen.clear()
