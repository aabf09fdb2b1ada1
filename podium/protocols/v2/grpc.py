"""The Open Inference Protocol over gRPC: ``ModelInferRequest`` in, ``ModelInferResponse`` out.

Front end side: ``decode_request`` validates a parsed ``ModelInferRequest`` completely and
turns it into a ``V2Request`` (anything malformed is ``InvalidRequest``, which the gRPC
front end answers ``INVALID_ARGUMENT``). Worker side: ``CODEC`` gives the handler the
request's arrays and serializes its answer as a ``ModelInferResponse`` right there, so the
front end passes the bytes on without parsing them again.

Values arrive either as typed lists (``contents``, one list per datatype family) or as
``raw_input_contents``, one little-endian buffer per input; answers always go back raw, as
Triton answers and as ``tritonclient`` reads them. Nothing here imports grpcio: the worker
needs only protobuf.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from podium.errors import HandlerError, InvalidRequest, PodiumError
from podium.protocols.codec import Codec, Model
from podium.protocols.v2 import DATATYPES, RequestedOutput, Tensor, V2Request, answers, tensors
from podium.protocols.v2.proto.grpc_service_pb2 import (
    InferParameter,
    InferTensorContents,
    ModelInferRequest,
    ModelInferResponse,
)
from podium.types import InferenceResponse

TAG = "v2-grpc"
JSON = "application/json"
GRPC = "application/grpc"

TYPED_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
"""The ``InferTensorContents`` list that carries each datatype; FP16 has none (raw only).
Lists wider than their datatype (``int_contents`` for INT8) are range-checked, not wrapped."""

CONTENT_FIELDS = tuple(field.name for field in InferTensorContents.DESCRIPTOR.fields)


def decode_request(message: ModelInferRequest, max_bytes: int) -> V2Request:
    """A ``ModelInferRequest`` as a validated ``V2Request``; ``InvalidRequest`` when it is
    malformed.

    ``max_bytes`` (the largest request accepted) bounds each tensor's element count before
    anything is allocated: no element takes less than a byte on the wire, so a shape that
    claims more elements than that cannot be honest.
    """
    if not message.inputs:
        raise InvalidRequest("The request has no inputs")
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidRequest(
            f"The request has {len(raw)} raw_input_contents for {len(message.inputs)} inputs"
        )
    inputs: list[Tensor] = []
    names: set[str] = set()
    for index, tensor in enumerate(message.inputs):
        name = _unique_name(tensor.name, names, "input")
        datatype = tensor.datatype
        if datatype not in DATATYPES:
            raise InvalidRequest(f'input "{name}": unknown datatype {datatype!r}')
        shape = _shape(name, tensor.shape, max_bytes)
        if raw:
            if _has_typed_values(tensor.contents):
                raise InvalidRequest(
                    f'input "{name}": has contents, but the request sends raw_input_contents '
                    "(one or the other)"
                )
            data = tensors.from_raw(raw[index], name, datatype, shape)
        else:
            data = _typed_values(name, datatype, shape, tensor.contents)
        inputs.append(Tensor(name, datatype, shape, data, _parameters(tensor.parameters)))
    return V2Request(
        id=message.id or None,
        inputs=tuple(inputs),
        outputs=_requested_outputs(message) or None,
        parameters=_parameters(message.parameters),
    )


def _unique_name(name: str, seen: set[str], what: str) -> str:
    if not name:
        raise InvalidRequest(f"An {what} has no name")
    if name in seen:
        raise InvalidRequest(f'Two {what}s are named "{name}"')
    seen.add(name)
    return name


def _shape(name: str, dimensions: Sequence[int], max_bytes: int) -> tuple[int, ...]:
    shape = tensors.check_shape(name, dimensions)
    if math.prod(size for size in shape if size) > max_bytes:
        raise InvalidRequest(
            f'input "{name}": shape {list(shape)} has more elements than a request of at '
            f"most {max_bytes} bytes can carry"
        )
    return shape


def _has_typed_values(contents: InferTensorContents) -> bool:
    return any(len(getattr(contents, field)) for field in CONTENT_FIELDS)


def _typed_values(
    name: str, datatype: str, shape: tuple[int, ...], contents: InferTensorContents
) -> np.ndarray[Any, Any]:
    """An input's typed list as an array of its shape: the list must be the one its datatype
    takes, hold exactly the shape's element count, and fit the datatype's range."""
    field = TYPED_FIELDS.get(datatype)
    for other in CONTENT_FIELDS:
        if other != field and len(getattr(contents, other)):
            expected = field or "raw_input_contents only"
            raise InvalidRequest(f'input "{name}": {datatype} data in {other}; it takes {expected}')
    if field is None and tensors.element_count(shape):
        raise InvalidRequest(f'input "{name}": {datatype} data travels only in raw_input_contents')
    values = list(getattr(contents, field)) if field else []
    return tensors.from_list(values, name, datatype, shape)


def _requested_outputs(message: ModelInferRequest) -> tuple[RequestedOutput, ...]:
    names: set[str] = set()
    return tuple(
        RequestedOutput(
            _unique_name(output.name, names, "output"),
            None,
            _parameters(output.parameters),
        )
        for output in message.outputs
    )


def _parameters(parameters: Mapping[str, InferParameter]) -> dict[str, Any] | None:
    """Parameters as plain values (None for one with no value set); None when there are none."""
    if not parameters:
        return None
    values: dict[str, Any] = {}
    for key, parameter in parameters.items():
        choice = parameter.WhichOneof("parameter_choice")
        values[key] = getattr(parameter, choice) if choice else None
    return values


def _set_parameter(target: InferParameter, value: Any) -> bool:
    """Write one output parameter; False for a value the protocol has no field for."""
    if isinstance(value, bool):
        target.bool_param = value
    elif isinstance(value, int) and -(2**63) <= value < 2**63:
        target.int64_param = value
    elif isinstance(value, int) and 0 <= value < 2**64:
        target.uint64_param = value
    elif isinstance(value, float):
        target.double_param = value
    elif isinstance(value, str):
        target.string_param = value
    else:
        return False
    return True


def encode_answer(outputs: Sequence[Tensor], request: V2Request, model: Model) -> bytes:
    """A serialized ``ModelInferResponse`` holding ``outputs``, each one's values raw."""
    response = ModelInferResponse(
        model_name=model.name, model_version=model.version, id=request.id or ""
    )
    for tensor in outputs:
        output = response.outputs.add(name=tensor.name, datatype=tensor.datatype)
        output.shape.extend(tensor.shape)
        for key, value in (tensor.parameters or {}).items():
            if not _set_parameter(output.parameters[key], value):
                del output.parameters[key]
        response.raw_output_contents.append(tensors.to_raw(tensor))
    body: bytes = response.SerializeToString()
    return body


def encode_error(error: BaseException, debug: bool) -> InferenceResponse:
    """An error answer: its status (the gRPC front end maps it to a code), its headers
    (``Retry-After``, sent as trailing metadata) and ``{"error": message}``."""
    if not isinstance(error, PodiumError):
        message = f"{type(error).__name__}: {error}"
        if debug:
            message += "\n" + "".join(traceback.format_exception(error))
        error = HandlerError(message)
    body = orjson.dumps({"error": error.message})
    return InferenceResponse(error.status, JSON, body, tuple(error.headers().items()))


class GrpcCodec(Codec):
    """The worker's side of V2 over gRPC: arrays in, a serialized ``ModelInferResponse`` out.

    Only a handler's last value is answered (``streams``): ``ModelInfer`` is unary."""

    tag = TAG
    streams = False

    def decode(self, payload: Any) -> Any:
        return tensors.handler_input(payload)

    def encode(self, value: Any, payload: Any, model: Model) -> InferenceResponse:
        if isinstance(value, BaseException):
            return encode_error(value, debug=False)
        try:
            outputs = answers.answer_tensors(value, payload)
            body = encode_answer(outputs, payload, model)
        except PodiumError as error:
            return encode_error(error, debug=False)
        except Exception as error:  # the answer is not tensors: the model's fault, a 500
            message = f"The answer cannot be sent as V2 tensors: {type(error).__name__}: {error}"
            return encode_error(HandlerError(message), debug=False)
        return InferenceResponse(200, GRPC, body)

    def error(self, error: BaseException, payload: Any, debug: bool) -> InferenceResponse:
        return encode_error(error, debug)


CODEC = GrpcCodec()
