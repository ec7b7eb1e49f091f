"""``/carriers``: the tariffs that price policies and choose return carriers, the weights of the
carrier score, and the score itself for a lane and a shipment.

Operators replace the tariffs or the weights, each a whole document with If-Match on its
revision; every replica follows within a moment (KV watch). Until one is saved, the packaged
SAMPLE tariffs and the default weights are in force (revision 0)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, MediaType, Request, Response, get, put
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from streamguard.api.auth import MAX_JSON_BODY_BYTES, requires
from streamguard.api.carriers.schemas import ChoiceView, TariffsDoc, WeightsDoc
from streamguard.api.common import IfMatch, etag, parse_if_match, plane_of, reject_unknown_query
from streamguard.api.kvdoc import PRECONDITIONS, current_entry, replace
from streamguard.api.problems import ERRORS, unprocessable
from streamguard.bus.tariffs import TARIFFS_KEY, WEIGHTS_KEY, tariffs_bucket
from streamguard.domain.auth import Role
from streamguard.domain.insurance import TariffError, Tariffs
from streamguard.domain.money import parse_cny
from streamguard.domain.orders import MONEY_PATTERN
from streamguard.domain.regions import REGION_PATTERN, check_region
from streamguard.domain.returns import (
    DEFAULT_WEIGHTS,
    ReturnRequest,
    ScoringChooser,
    Weights,
    choice_view,
)
from streamguard.domain.validation import FieldError

__all__ = ["CarrierScoreController", "TariffController"]

FIRST_WEIGHTS = {
    201: ResponseSpec(
        data_container=WeightsDoc,
        description="The first weights saved over the defaults (ETag: the revision)",
        generate_examples=False,
    )
}
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


_SCORE_PARAMETERS = frozenset({"origin", "dest", "declared_value", "fragile"})


def _weights_response(weights: Weights, revision: int, status_code: int) -> Response[WeightsDoc]:
    return Response(
        WeightsDoc(**weights.as_dict()), status_code=status_code, headers={"ETag": etag(revision)}
    )


class CarrierScoreController(Controller):
    path = "/carriers"
    tags = ("carriers",)
    request_max_body_size = MAX_JSON_BODY_BYTES

    @get(
        "/score",
        guards=[requires(Role.OPERATOR, Role.DEPOT)],
        responses=ERRORS,
        summary="Rank the carriers for a lane and a shipment, each with its component scores "
        "or the constraints that exclude it",
        description="Time and quality come from the engine's lane statistics (province pair, "
        "smoothed toward the carrier) where it has them, else from the tariff's nominal SLA and "
        "a neutral quality; cost is shipping plus the premium for the declared value.",
    )
    async def score(
        self,
        request: Request[Any, Any, Any],
        origin: Annotated[
            str, QueryParameter(pattern=REGION_PATTERN, description="pickup region, CN-xxxxxx")
        ],
        dest: Annotated[
            str, QueryParameter(pattern=REGION_PATTERN, description="delivery region, CN-xxxxxx")
        ],
        declared_value: Annotated[
            str, QueryParameter(pattern=MONEY_PATTERN, description="CNY, e.g. 4999.00")
        ],
        fragile: Annotated[bool, QueryParameter(description="needs shock-proof packaging")] = False,
    ) -> ChoiceView:
        reject_unknown_query(request, _SCORE_PARAMETERS)
        ops = plane_of(request).ops
        unknown = []
        for name, region in (("origin", origin), ("dest", dest)):
            try:
                check_region(region)
            except ValueError as e:
                unknown.append(FieldError(name, str(e)))
        if unknown:
            raise unprocessable(unknown)
        req = ReturnRequest(
            origin=origin, dest=dest, declared_value_fen=parse_cny(declared_value), fragile=fragile
        )
        choice = ScoringChooser(ops.tariffs, ops.lanes).choose(req, ops.weights)
        return msgspec.convert(choice_view(choice), ChoiceView)

    @get(
        "/weights",
        guards=[requires(Role.OPERATOR, Role.DEPOT)],
        responses=ERRORS,
        summary="The weights of the carrier score, with their revision as ETag (0: defaults)",
    )
    async def read_weights(self, request: Request[Any, Any, Any]) -> Response[WeightsDoc]:
        entry = await current_entry(await tariffs_bucket(plane_of(request).js), WEIGHTS_KEY)
        if entry is None or not entry.value:
            return _weights_response(DEFAULT_WEIGHTS, 0, HTTP_200_OK)
        weights = msgspec.json.decode(entry.value, type=Weights)
        return _weights_response(weights, int(entry.revision or 0), HTTP_200_OK)

    @put(
        "/weights",
        guards=[requires(Role.OPERATOR)],
        responses={**ERRORS, **PRECONDITIONS, **FIRST_WEIGHTS},
        summary="Replace the weights of the carrier score (If-Match their ETag)",
    )
    async def replace_weights(
        self, request: Request[Any, Any, Any], data: JSONBody[WeightsDoc], if_match: IfMatch
    ) -> Response[WeightsDoc]:
        expected = parse_if_match(if_match)
        try:
            weights = Weights(**msgspec.structs.asdict(data))
        except ValueError as e:
            raise unprocessable([FieldError("weights", str(e))], "invalid weights") from None
        kv = await tariffs_bucket(plane_of(request).js)
        value = msgspec.json.encode(weights)
        revision, created = await replace(kv, WEIGHTS_KEY, value, expected, "weights document")
        plane_of(request).ops.weights = weights
        return _weights_response(weights, revision, HTTP_201_CREATED if created else HTTP_200_OK)
