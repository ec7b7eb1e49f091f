"""``/carriers/tariffs``: the tariffs that price policies and choose return carriers. Operators
replace the whole document with If-Match on its revision; every replica follows within a
moment (KV watch). Until one is saved, the packaged SAMPLE tariffs are in force (revision 0)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from streamguard.api.auth import MAX_JSON_BODY_BYTES, requires
from streamguard.api.carriers.schemas import TariffsDoc
from streamguard.api.common import IfMatch, etag, parse_if_match, plane_of
from streamguard.api.kvdoc import PRECONDITIONS, current_entry, replace
from streamguard.api.problems import ERRORS, unprocessable
from streamguard.bus.tariffs import TARIFFS_KEY, tariffs_bucket
from streamguard.domain.auth import Role
from streamguard.domain.insurance import TariffError, Tariffs

__all__ = ["TariffController"]

FIRST_SAVE = {
    201: ResponseSpec(
        data_container=TariffsDoc,
        description="The first tariffs saved over the sample (ETag: the revision)",
        generate_examples=False,
    )
}


def _document(value: bytes, revision: int, status_code: int) -> Response[TariffsDoc]:
    response: Response[Any] = Response(
        value, status_code=status_code, media_type=MediaType.JSON, headers={"ETag": etag(revision)}
    )
    return response


class TariffController(Controller):
    path = "/carriers/tariffs"
    tags = ("carriers",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @get(
        "/",
        guards=[requires(Role.OPERATOR, Role.DEPOT)],
        responses=ERRORS,
        summary="The carrier tariffs in force, with their revision as ETag (0: the sample)",
    )
    async def read(self, request: Request[Any, Any, Any]) -> Response[TariffsDoc]:
        entry = await current_entry(await tariffs_bucket(plane_of(request).js), TARIFFS_KEY)
        if entry is None or not entry.value:
            return _document(Tariffs.load_sample().to_json(), 0, HTTP_200_OK)
        return _document(entry.value, int(entry.revision or 0), HTTP_200_OK)

    @put(
        "/",
        guards=[requires(Role.OPERATOR)],
        responses={**ERRORS, **PRECONDITIONS, **FIRST_SAVE},
        summary="Replace the carrier tariffs (If-Match their ETag)",
        description="Every value is checked and every bad one named "
        "(`carriers.<code>.<field>`); nothing is saved unless all are good.",
    )
    async def replace(
        self, request: Request[Any, Any, Any], data: JSONBody[TariffsDoc], if_match: IfMatch
    ) -> Response[TariffsDoc]:
        expected = parse_if_match(if_match)
        try:
            tariffs = Tariffs.from_json(msgspec.json.encode(data))
        except TariffError as e:
            raise unprocessable(e.errors, "invalid tariffs") from None
        value = tariffs.to_json()
        kv = await tariffs_bucket(plane_of(request).js)
        revision, created = await replace(kv, TARIFFS_KEY, value, expected, "tariff document")
        plane_of(request).ops.tariffs = tariffs
        return _document(value, revision, HTTP_201_CREATED if created else HTTP_200_OK)
