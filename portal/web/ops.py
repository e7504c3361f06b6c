"""For operators and their tools: liveness, readiness, Prometheus metrics, and the request id
every request carries into its log records, its response and the jobs it starts.

These answers need no session, no CSRF token and no rate limit, and they never set a cookie.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Sequence

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request

from portal.db import get_engine
from portal.extensions import csrf, limiter
from portal.health import readiness
from portal.logs import accept_request_id, bind_request_id, unbind_request_id
from portal.metrics import observe_request, render
from portal.services.audit import bind_client_address, unbind_client_address

bp = Blueprint("ops", __name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK = "127.0.0.1,::1"


def allowed_networks(setting: str | None) -> list[Network]:
    """``METRICS_ALLOW``: comma-separated addresses or networks; a wrong entry stops the start."""
    networks = []
    for entry in (setting or "").split(","):
        if entry.strip():
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError as exc:
                raise RuntimeError(f"METRICS_ALLOW: not an address or network: {entry.strip()!r}") from exc
    return networks


def address_allowed(address: str | None, networks: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in network for network in networks)


def _bearer_matches(token: str) -> bool:
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


@bp.get("/healthz")
def healthz():
    """The process is alive and answering (nothing else is checked)."""
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Database, broker (when configured) and photo store reachable: 200, else 503 naming what failed."""
    ready, checks = readiness(get_engine(), current_app.config)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {check.name: check.as_dict() for check in checks},
        "failing": [check.name for check in checks if check.state not in ("ok", "not configured")],
    }
    return jsonify(body), 200 if ready else 503


@bp.get("/metrics")
def metrics():
    """Prometheus text format, for allowed addresses (loopback by default) and/or a bearer token."""
    token = current_app.config.get("METRICS_TOKEN")
    networks = current_app.extensions["portal.metrics_allow"]
    # Bare refusals: the error pages would start a session (their forms carry a CSRF token).
    if networks is not None and not address_allowed(request.remote_addr, networks):
        return Response("Not Found\n", 404, mimetype="text/plain")  # strangers learn nothing, not even that it exists
    if token and not _bearer_matches(token):
        return Response("Forbidden\n", 403, mimetype="text/plain")
    body, content_type = render(current_app.extensions["portal.sessionmaker"])
    return Response(body, content_type=content_type)


def _begin_request() -> None:
    g.request_started = time.perf_counter()
    g.request_id = accept_request_id(request.headers.get("X-Request-ID"))
    g.request_id_token = bind_request_id(g.request_id)
    # Audit rows written while handling this request say where it came from (request.remote_addr,
    # which a proxy fix in front of the app would already have corrected).
    g.client_address_token = bind_client_address(request.remote_addr)


def init_ops(app: Flask) -> None:
    allow = app.config.get("METRICS_ALLOW")
    # With only a token configured the token is the gate; otherwise the address list is (loopback by default).
    app.extensions["portal.metrics_allow"] = (
        None if app.config.get("METRICS_TOKEN") and not allow else allowed_networks(allow or LOOPBACK)
    )
    app.register_blueprint(bp)
    csrf.exempt(bp)
    limiter.exempt(bp)
    # First of all before-request hooks, so even a request another hook refuses has its id and timing.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin_request)

    @app.after_request
    def finish_request(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
        if "request_started" in g:
            endpoint = request.url_rule.endpoint if request.url_rule is not None else None
            observe_request(endpoint, request.method, response.status_code, time.perf_counter() - g.request_started)
        return response

    @app.teardown_request
    def forget_request_id(_exc: BaseException | None) -> None:
        address_token = g.pop("client_address_token", None)
        if address_token is not None:
            unbind_client_address(address_token)
        token = g.pop("request_id_token", None)
        if token is not None:
            try:
                unbind_request_id(token)
            except ValueError:  # reset from another context: just clear it
                bind_request_id(None)
