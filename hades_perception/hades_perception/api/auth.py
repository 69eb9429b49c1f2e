"""Bearer keys and scopes, as a FastAPI dependency: `Depends(require("predict"))`, or
`AnyKey` and `check_scope` where the scope depends on what is asked (a job's kind).

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


def authenticate(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> ApiKey:
    """The request's key, whatever its scopes (401 without a good one, 429 past its rate)."""
    ctx = context(request)
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "send an API key as 'Authorization: Bearer <key>'; a person with the keys file creates one "
            "with: hades-perception keys create NAME --scopes read",
            headers=CHALLENGE,
        )
    key = ctx.keys.verify(credentials.credentials)
    if key is None:
        raise ApiError(401, "unauthorized", "this API key is unknown or was revoked", headers=CHALLENGE)
    request.state.key_name = key.name
    wait = ctx.limiter.take(key.name)
    if wait > 0:
        raise ctx.limiter.refuse(key.name, wait)
    return key


def check_scope(request: Request, key: ApiKey, scope: str, what: str = "") -> None:
    """403 unless `key` has `scope`; `what` names the thing when the route alone does not say."""
    if scope not in key.scopes:
        raise ApiError(
            403,
            "forbidden",
            f"key {key.name!r} has scopes {list(key.scopes)}; {request.method} {request.url.path}{what} needs "
            f"{scope!r} (create a key with it: hades-perception keys create NAME --scopes {scope})",
        )


def require(scope: str) -> Callable[..., ApiKey]:
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}; known: {SCOPES}")

    def check(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> ApiKey:
        if credentials is None:
            raise ApiError(
                401,
                "unauthorized",
                "send an API key as 'Authorization: Bearer <key>'; a person with the keys file creates one "
                f"with: hades-perception keys create NAME --scopes {scope}",
                headers=CHALLENGE,
            )
        key = authenticate(request, credentials)
        check_scope(request, key, scope)
        return key

    return check


# A route's key, by the scope it needs: `key: PredictKey`. AnyKey: the route checks the
# scope itself, because it depends on what is asked for (a job's kind).
ReadKey = Annotated[ApiKey, Depends(require("read"))]
PredictKey = Annotated[ApiKey, Depends(require("predict"))]
PromoteKey = Annotated[ApiKey, Depends(require("promote"))]
TrainKey = Annotated[ApiKey, Depends(require("train"))]
AnyKey = Annotated[ApiKey, Depends(authenticate)]
