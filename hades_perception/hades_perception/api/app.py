"""The HTTP API's application and server: `hades-perception serve`.

An adapter over the same core as the ROS node: model_source.start_serving gives the
ServingSlot (a bundle folder, or a store channel through the local cache) and the
follower, which is started exactly as the node starts it and swaps the slot's pipeline
when a person moves the channel. Requests run the slot's pipeline in FastAPI's thread
pool, one at a time under a lock. There is no inference worker: the follower's
candidate runs its golden passes on the follower's own thread.

Jobs (batches, hades-train runs) run on two threads of the job lanes, started and
stopped with the server (api/jobs.py); their folders and the uploaded datasets live in
the work dir.

Around the routes, outermost first: an access log (method, path, status, time and the
key's name; never a header, so never a key; uvicorn's own access log is off), CORS
(only with --cors-origin: closed otherwise), the body limit, then the error handlers
that give every refusal the same JSON shape. The web app (routes_web.py) is served at /.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.middleware.cors import CORSMiddleware

import hades_perception
from hades_perception.api import (
    errors,
    routes_datasets,
    routes_jobs,
    routes_live,
    routes_models,
    routes_monitoring,
    routes_oip,
    routes_predict,
    routes_web,
)
from hades_perception.api.context import Context
from hades_perception.api.errors import ApiError
from hades_perception.api.keys import KeyFile
from hades_perception.api.limits import BodyLimit, Message, RateLimiter, Receive, Scope, Send
from hades_perception.api.settings import ServeSettings
from hades_perception.serving import model_source

log = logging.getLogger(__name__)
access = logging.getLogger("hades_perception.api.access")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class AccessLog:
    """One line per request: method, path (no query), status, ms, key name."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0, status = time.perf_counter(), [500]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            name = scope.get("state", {}).get("key_name")
            access.info(
                "%s %s %d %.0f ms%s",
                scope["method"],
                scope["path"],
                status[0],
                (time.perf_counter() - t0) * 1e3,
                f" key={name}" if name else "",
            )


def _query_names(dependant: Dependant) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def known_query_only(request: Request) -> None:
    """422 for a query parameter the route does not take: `?mask=true` for `?masks=true`
    would otherwise be ignored in silence."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _query_names(route.dependant)
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        takes = f"it takes {', '.join(sorted(known))}" if known else "it takes none"
        raise ApiError(422, "invalid request", f"unknown query parameter(s) {unknown} for {request.url.path}; {takes}")


def create_app(ctx: Context) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """The job lanes and the live feed run while the server does; stopping ends a
        running subprocess."""
        ctx.jobs.start()
        ctx.live.start()
        try:
            yield
        finally:
            ctx.live.stop()
            ctx.jobs.stop()

    app = FastAPI(
        lifespan=lifespan,
        dependencies=[Depends(known_query_only)],
        title="Hades Perception API",
        version=hades_perception.__version__,
        description="Masks, root tips, plants and certainty for Arabidopsis seedling plates; the model store. "
        "Send an API key as `Authorization: Bearer <key>` (health routes need none). See docs/api.md.",
    )
    app.state.context = ctx
    errors.install_handlers(app)
    routers = (routes_predict, routes_jobs, routes_datasets, routes_models, routes_monitoring, routes_live, routes_oip)
    for module in (*routers, routes_web):
        app.include_router(module.router)
    routes_web.install(app)
    app.add_middleware(BodyLimit, limit=ctx.settings.max_upload_bytes)
    if ctx.settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(ctx.settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            max_age=600,
        )
    app.add_middleware(AccessLog)
    return app


def serve(settings: ServeSettings) -> int:
    """Load (or fetch) the model, follow its channel when a store is set, and serve HTTP
    until SIGINT or SIGTERM."""
    import uvicorn

    logging.getLogger("azure").setLevel(logging.WARNING)  # request logs would show store URLs with SAS tokens
    keys = KeyFile(settings.keys_file)
    if not keys.keys():
        log.warning(
            "no API keys in %s: every route but health answers 401; create one with "
            "hades-perception keys create NAME --scopes read,predict --keys %s",
            keys.path,
            keys.path,
        )
    # No inference worker (None, which ServingSlot takes): a candidate's golden passes run
    # on the follower's thread.
    slot, follower = model_source.start_serving(settings.param, None)
    ctx: Context | None = None
    try:
        ctx = Context(settings, slot, follower, keys, RateLimiter(settings.rate_per_min))
        app = create_app(ctx)
        if settings.metrics_port:
            ctx.metrics = start_metrics(ctx)
        if follower is not None:
            follower.start()
        m = slot.pipeline.manifest
        following = f"; following {follower.status.store} channel {follower.channel}" if follower else ""
        log.info("serving %s %s on %s%s", m.name, m.version, slot.pipeline.engine.name, following)
        if settings.host not in LOOPBACK:
            log.warning(
                "listening on %s: reachable from other machines, and keys travel in clear over plain HTTP; "
                "put a TLS proxy in front",
                settings.host,
            )
        log.info(
            "API on http://%s:%d (routes: /docs); jobs and datasets in %s",
            settings.host,
            settings.port,
            settings.work_dir,
        )
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            access_log=False,  # ours (AccessLog) names the key, never shows it
            log_config=None,  # the CLI's logging set-up
            server_header=False,
            timeout_graceful_shutdown=10,
        )
        with graceful_stop():
            uvicorn.Server(config).run()
    finally:
        if follower is not None:
            follower.stop(timeout=5.0)
        if ctx is not None and ctx.metrics is not None:
            ctx.metrics.close()
    return 0


def start_metrics(ctx: Context) -> Any:
    """The Prometheus endpoint (monitoring/metrics.py) on its own port: predictions asked
    for, made and failed, stage times, the model served and the drift of what it served."""
    try:
        from hades_perception.monitoring.metrics import Metrics
    except ImportError as exc:
        raise ValueError(
            f"--metrics-port needs prometheus-client (pip install hades_perception[metrics]): {exc}"
        ) from exc
    s = ctx.settings

    def model() -> dict[str, str]:
        p = ctx.slot.pipeline
        return {"name": p.manifest.name, "version": p.manifest.version, "engine": p.engine.name}

    def drift() -> tuple[str, str]:
        status = ctx.drift.status(ctx.slot.pipeline.manifest)
        return status.level_name, status.worst_signal

    metrics = Metrics(f"api:{s.host}:{s.port}", ctx.counters.snapshot, drift, model)
    port = metrics.start(s.metrics_host, s.metrics_port)
    log.info("Prometheus metrics on http://%s:%d/metrics", s.metrics_host, port)
    return metrics


@contextlib.contextmanager
def graceful_stop() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGINT and SIGTERM, then raises the signal again
    for the handler it found. Ours notes it, so the server stops with exit status 0 and
    the follower is stopped, rather than dying by the signal or a KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda signum, _frame: seen.append(signum)) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if seen:
            log.info("stopped by %s", signal.Signals(seen[0]).name)
