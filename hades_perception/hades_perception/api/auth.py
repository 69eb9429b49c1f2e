"""Bearer keys and scopes, as a FastAPI dependency: `Depends(require("predict"))`.

401 without a key or with one the keys file does not hold (a revoked key included), 403
when the key lacks the route's scope, 429 when the key's rate is spent. The key's name
goes into the request's state for the access log; the key itself is never logged.
Health routes do not use this: probes carry no key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hades_perception.api.context import context
from hades_perception.api.errors import ApiError
from hades_perception.api.keys import SCOPES, ApiKey

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from `hades-perception keys create NAME --scopes ...`, sent as Bearer",
)
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hades-perception"'}


def require(scope: str) -> Callable[..., ApiKey]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {SCOPES}")

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
        ctx = context(request)
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                "send an API key as 'Authorization: Bearer <key>'; a person with the keys file creates one "
                f"with: hades-perception keys create NAME --scopes {scope}",
                headers=CHALLENGE,
            )
        key = ctx.keys.verify(credentials.credentials)
        if key is None:
            raise ApiError(401, "unauthorized", "this API key is unknown or was revoked", headers=CHALLENGE)
        request.state.key_name = key.name
        wait = ctx.limiter.take(key.name)
        if wait > 0:
            raise ctx.limiter.refuse(key.name, wait)
        if scope not in key.scopes:
            raise ApiError(
                403,
                "forbidden",
                f"key {key.name!r} has scopes {list(key.scopes)}; {request.method} {request.url.path} needs "
                f"{scope!r} (create a key with it: hades-perception keys create NAME --scopes {scope})",
            )
        return key

    return check


# A route's key, by the scope it needs: `key: PredictKey`.
ReadKey = Annotated[ApiKey, Depends(require("read"))]
PredictKey = Annotated[ApiKey, Depends(require("predict"))]
PromoteKey = Annotated[ApiKey, Depends(require("promote"))]
