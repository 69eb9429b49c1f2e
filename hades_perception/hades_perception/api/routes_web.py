"""The web app (webapp/, React + Vite) served by the API's own process, and the one
route it needs beyond the API: `GET /v1/me`, which key this is and what it may do.

The app is built into api/web by scripts/setup.sh (`npm ci && npm run build` in
webapp/); the built files are not committed. HADES_WEB_DIR points elsewhere (a
container's image, say). When nothing is built, `/` says how to build it and the API
works as before. The app's pages call the same routes as any client, with the key a
person pastes in (kept in the tab's sessionStorage), so the app has no powers of its
own. Its responses carry a Content-Security-Policy that allows only this origin's
scripts and no framing.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from hades_perception.api.auth import AnyKey
from hades_perception.api.errors import responses

router = APIRouter(tags=["web app"])
BUILT = Path(__file__).resolve().parent / "web"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Hades Perception</title></head>
<body><main><h1>Hades Perception API</h1>
<p>The web app is not built in {where}. Build it with <code>scripts/setup.sh</code>, or
<code>cd webapp &amp;&amp; npm ci &amp;&amp; npm run build</code>. The API works without it:
see <a href="/docs">/docs</a>.</p></main></body></html>"""


def web_dir() -> Path:
    return Path(os.environ.get("HADES_WEB_DIR") or BUILT)


class Me(BaseModel):
    name: str = Field(description="the key's name")
    scopes: list[str]


@router.get("/v1/me", response_model=Me, responses=responses(401, 429), summary="The key's name and scopes")
def me(key: AnyKey) -> Me:
    return Me(name=key.name, scopes=list(key.scopes))


class SecuredStatic(StaticFiles):
    """Static files with the app's security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_raw_headers()]
            await send(message)

        await super().__call__(scope, receive, sending)


def _raw_headers() -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def install(app: FastAPI) -> None:
    """`/` (the app's page) and `/assets` (its scripts and styles), from web_dir()."""
    folder = web_dir()
    index = folder / "index.html"

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        if not index.is_file():
            return HTMLResponse(NOT_BUILT.format(where=folder), status_code=503, headers=SECURITY_HEADERS)
        return FileResponse(index, headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})

    if (folder / "assets").is_dir():
        app.mount("/assets", SecuredStatic(directory=folder / "assets"), name="assets")
