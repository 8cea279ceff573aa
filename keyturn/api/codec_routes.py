"""Temporal's remote codec endpoint: `POST /codec/decode` and `/codec/encode`.

Temporal's Web UI and CLI (`temporal workflow show --codec-endpoint URL/codec
--codec-auth "Bearer TOKEN"`) send payloads here in Temporal's JSON form,
`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`,
and show what comes back: with keyturn's codec (keyturn.codec) undone, history's
references and fingerprints read as JSON. Payloads carry references, never
secret values, and only principals with the auditor role, who may read runs
anyway, may ask (bearer token; RequestGuard reads no body before the token
checks out, and caps its size).

`X-Namespace` names the namespace the payloads come from: keyturn has one codec
key, for the namespace it serves (KEYTURN_NAMESPACE); another is refused. The
Web UI calls from its own origin: with KEYTURN_UI_ORIGIN set to it, the answers
and the CORS preflight (OPTIONS) carry the headers a browser needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from keyturn.api.auth import AUDITOR, Principal, require
from keyturn.api.context import ApiContext, get_context
from keyturn.api.errors import ApiError, responses
from keyturn.codec import data_converter
from keyturn.config import ConfigError

NAMESPACE_HEADER = "X-Namespace"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"

router = APIRouter(prefix="/codec", tags=["codec"])


def _cors(request: Request) -> dict[str, str]:
    """CORS headers for a request from the configured Web UI origin; none for any other."""
    origin = get_context(request).settings.temporal_ui_origin
    if not origin or request.headers.get("origin", "").rstrip("/") != origin:
        return {}
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Vary": "Origin"}


async def _convert(request: Request, ctx: ApiContext, decode: bool) -> Response:
    settings = ctx.settings.keyturn
    namespace = request.headers.get(NAMESPACE_HEADER) or settings.namespace
    if namespace != settings.namespace:
        raise ApiError(400, "wrong_namespace", f"keyturn decodes payloads of namespace "
                       f"{settings.namespace!r} only, not {namespace!r}")
    try:
        payloads = json_format.Parse(await request.body(), Payloads())
    except json_format.ParseError:  # the message could quote the payloads
        raise ApiError(400, "invalid_payloads", 'expected {"payloads": [{"metadata": {...}, '
                       '"data": "<base64>"}]}') from None
    codec = data_converter(settings.codec_key).payload_codec
    assert codec is not None  # data_converter always sets one
    try:
        done = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
    except ConfigError as exc:  # sealed under another key: says which key id
        raise ApiError(400, "codec_key_mismatch", str(exc)) from None
    except Exception:  # noqa: BLE001 - a corrupt payload: say so, quote nothing of it
        raise ApiError(400, "undecodable", "a payload could not be decoded") from None
    body = json_format.MessageToJson(Payloads(payloads=done), indent=None)
    return Response(body, media_type="application/json", headers=_cors(request))


Auditor = Annotated[Principal, Depends(require(AUDITOR))]
Context = Annotated[ApiContext, Depends(get_context)]


@router.post("/decode", responses=responses(400, 401, 403, 413),
             summary="Decode payloads (Temporal remote codec)")
async def decode(request: Request, principal: Auditor, ctx: Context) -> Response:
    return await _convert(request, ctx, decode=True)


@router.post("/encode", responses=responses(400, 401, 403, 413),
             summary="Encode payloads (Temporal remote codec)")
async def encode(request: Request, principal: Auditor, ctx: Context) -> Response:
    return await _convert(request, ctx, decode=False)


@router.options("/{action}", include_in_schema=False)
async def preflight(request: Request, action: str) -> Response:
    """The browser's CORS preflight: no credentials come with it, so none are asked for."""
    return Response(status_code=204, headers=_cors(request))
