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
from podium.protocols.v2 import DATATYPES, RequestedOutput, Tensor, V2Request, tensors
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

SERVER_EXTENSIONS = ("binary_tensor_data",)
"""The protocol extensions ``ServerMetadata`` names."""

MAX_DIMENSIONS = 32
"""Most dimensions a tensor may have: numpy 1.x refuses more (numpy 2, 64)."""

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
"""The ``InferTensorContents`` list that carries each datatype; FP16 has none (raw only)."""

CONTENT_FIELDS = tuple(field.name for field in InferTensorContents.DESCRIPTOR.fields)

NARROW_INTEGERS = frozenset({"INT8", "INT16", "UINT8", "UINT16"})
"""Datatypes whose typed list is wider than they are: values out of range are refused
rather than wrapped around."""


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
            raise InvalidRequest(f"Input {name!r} has an unknown datatype {datatype!r}")
        shape, count = _shape(name, tensor.shape, max_bytes)
        if raw:
            if _has_typed_values(tensor.contents):
                raise InvalidRequest(
                    f"Input {name!r} has contents, but the request sends raw_input_contents: "
                    "give one or the other"
                )
            data = tensors.from_raw(raw[index], name, datatype, shape)
        else:
            data = _typed_values(name, datatype, shape, count, tensor.contents)
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
        raise InvalidRequest(f"Two {what}s are named {name!r}")
    seen.add(name)
    return name


def _shape(name: str, dimensions: Sequence[int], max_bytes: int) -> tuple[tuple[int, ...], int]:
    """The shape and its element count, refused when negative or larger than can be sent."""
    shape = tuple(dimensions)
    if len(shape) > MAX_DIMENSIONS:
        raise InvalidRequest(
            f"Input {name!r} has {len(shape)} dimensions; at most {MAX_DIMENSIONS} are allowed"
        )
    if any(size < 0 for size in shape):
        raise InvalidRequest(f"Input {name!r} has a negative dimension in its shape {list(shape)}")
    # Each dimension is bounded too: [0, 2**62] holds no element, yet no array of it is sane.
    count = math.prod(shape)
    if count > max_bytes or any(size > max_bytes for size in shape):
        raise InvalidRequest(
            f"Input {name!r} has shape {list(shape)}, more elements than a request of at most "
            f"{max_bytes} bytes can carry"
        )
    return shape, count


def _has_typed_values(contents: InferTensorContents) -> bool:
    return any(len(getattr(contents, field)) for field in CONTENT_FIELDS)


def _typed_values(
    name: str, datatype: str, shape: tuple[int, ...], count: int, contents: InferTensorContents
) -> np.ndarray[Any, Any]:
    """An input's typed list as an array of its shape: the list must be the one its datatype
    takes, and hold exactly the shape's element count."""
    field = TYPED_FIELDS.get(datatype)
    for other in CONTENT_FIELDS:
        if other != field and len(getattr(contents, other)):
            expected = field or "raw_input_contents only"
            raise InvalidRequest(
                f"Input {name!r} of datatype {datatype} has {other}; it takes {expected}"
            )
    values: Sequence[Any] = getattr(contents, field) if field else ()
    if len(values) != count:
        raise InvalidRequest(
            f"Input {name!r} has {len(values)} values in {field or 'its contents'}, but its "
            f"shape {list(shape)} holds {count}"
            + ("" if field else f" (send {datatype} as raw_input_contents)")
        )
    dtype = DATATYPES[datatype]
    if datatype == "BYTES":
        data = np.empty(count, dtype=dtype)
        data[:] = list(values)
    elif datatype in NARROW_INTEGERS:
        wide = np.fromiter(values, dtype=np.int64, count=count)
        limits = np.iinfo(dtype)
        if count and (int(wide.min()) < limits.min or int(wide.max()) > limits.max):
            raise InvalidRequest(
                f"Input {name!r} has values outside the range of {datatype} "
                f"({limits.min} to {limits.max})"
            )
        data = wide.astype(dtype)
    else:
        data = np.fromiter(values, dtype=dtype, count=count)
    return data.reshape(shape)


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
    """An error answer: its status (the gRPC front end maps it to a code) and
    ``{"error": message}``."""
    if not isinstance(error, PodiumError):
        message = f"{type(error).__name__}: {error}"
        if debug:
            message += "\n" + "".join(traceback.format_exception(error))
        error = HandlerError(message)
    return InferenceResponse(error.status, JSON, orjson.dumps({"error": error.message}))


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
            outputs = tensors.answer_tensors(value, payload)
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
