"""The V2 REST codec and the tensor mapping: request bodies built by ``tritonclient`` (a
client nobody here wrote) decode, answers encode into bodies it reads back, and malformed
bodies are refused with 400 and a message that names the problem."""

from __future__ import annotations

import json
import math
import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from podium.archive import Manifest
from podium.errors import HandlerError, InvalidInput, InvalidRequest, PodiumError, QueueFull
from podium.handler import Context
from podium.handlers.specs import TensorSpec
from podium.handlers.tensors import TensorHandler
from podium.protocols import codec
from podium.protocols.codec import Model
from podium.protocols.v2 import DATATYPES, RequestedOutput, Tensor, V2Request
from podium.protocols.v2.answers import answer_tensors
from podium.protocols.v2.rest import (
    CODEC,
    HEADER_LENGTH,
    decode_request,
    error_body,
    parse_header_length,
)
from podium.protocols.v2.tensors import from_raw, handler_input, to_raw
from podium.types import InferenceResponse

MODEL = Model("nsmc", "2")
KOREAN = ["정말 재밌게 잘봤습니다!", "", "최악의 영화 ㅠㅠ", "a\x00b"]


def sample(datatype: str) -> np.ndarray[Any, Any]:
    """A [2, 2] array of the datatype, its extremes included."""
    if datatype == "BYTES":
        return np.array(KOREAN, dtype=np.object_).reshape(2, 2)
    if datatype == "BOOL":
        return np.array([[True, False], [False, True]])
    dtype = DATATYPES[datatype]
    if dtype.kind == "f":
        info = np.finfo(dtype)
        return np.array([[0.5, -2.25], [float(info.max), float(info.tiny)]], dtype=dtype)
    limits = np.iinfo(dtype)
    return np.array([[limits.min, limits.max], [0, 7]], dtype=dtype)


def body_for(
    arrays: dict[str, tuple[str, np.ndarray[Any, Any]]],
    binary: bool,
    outputs: list[Any] | None = None,
    request_id: str = "",
) -> tuple[bytes, int | None]:
    """A request body as tritonclient writes it."""
    inputs = []
    for name, (datatype, array) in arrays.items():
        tensor = triton.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    body, length = triton.InferenceServerClient.generate_request_body(
        inputs, outputs=outputs, request_id=request_id
    )
    return bytes(body), length


def read_answer(response: InferenceResponse) -> Any:
    """A response as tritonclient reads it."""
    headers = dict(response.headers)
    length = headers.get(HEADER_LENGTH)
    return triton.InferResult.from_response_body(
        response.body, header_length=None if length is None else int(length)
    )


def as_text(values: Any) -> list[Any]:
    return [v.decode() if isinstance(v, bytes) else v for v in np.asarray(values).ravel()]


def request_of(*inputs: Tensor, **fields: Any) -> V2Request:
    return V2Request(fields.pop("id", None), inputs, **fields)


def decoded(document: Any, binary: bytes | None = None) -> V2Request:
    header = json.dumps(document).encode()
    if binary is None:
        return decode_request(header, None)
    return decode_request(header + binary, len(header))


# --- round trips with tritonclient -------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
@pytest.mark.parametrize("datatype", list(DATATYPES))
def test_every_datatype_round_trips(datatype: str, binary: bool) -> None:
    array = sample(datatype)
    outputs = [triton.InferRequestedOutput("output0", binary_data=binary)]
    body, length = body_for({"x": (datatype, array)}, binary, outputs)
    assert (length is not None) == binary

    request = decode_request(body, length)
    (tensor,) = request.inputs
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, (2, 2))
    seen = handler_input(request)
    if datatype == "BYTES":
        assert seen == [KOREAN[:2], KOREAN[2:]]
    else:
        assert seen.dtype == array.dtype
        np.testing.assert_array_equal(seen, array)

    answer = read_answer(CODEC.encode(seen, request, MODEL))
    got = answer.as_numpy("output0")
    if datatype == "BYTES":
        assert as_text(got) == KOREAN
    else:
        assert got.dtype == array.dtype
        np.testing.assert_array_equal(got, array)


def test_tritonclient_default_asks_every_output_as_binary() -> None:
    body, length = body_for({"x": ("FP32", np.ones((1, 64), np.float32))}, True, request_id="r1")
    request = decode_request(body, length)
    assert request.binary_output and request.outputs is None and request.id == "r1"
    response = CODEC.encode({"logits": np.arange(3, dtype=np.float32)}, request, MODEL)
    assert response.content_type == "application/octet-stream"
    answer = read_answer(response)
    header = answer.get_response()
    assert header["model_name"] == "nsmc" and header["model_version"] == "2"
    assert header["id"] == "r1"
    assert header["outputs"][0]["parameters"] == {"binary_data_size": 12}
    np.testing.assert_array_equal(answer.as_numpy("logits"), [0, 1, 2])


def test_a_json_answer_has_no_binary_header() -> None:
    request = decoded({"inputs": [{"name": "x", "datatype": "INT32", "shape": [1], "data": [1]}]})
    response = CODEC.encode([[1.5, 2.5]], request, MODEL)
    assert response.status == 200 and response.content_type == "application/json"
    assert response.headers == ()
    assert orjson.loads(response.body) == {
        "model_name": "nsmc",
        "model_version": "2",
        "outputs": [{"name": "output0", "datatype": "FP64", "shape": [1, 2], "data": [1.5, 2.5]}],
    }


def test_korean_text_reaches_a_handler_as_a_list_of_str() -> None:
    text = np.array(["리뷰 텍스트"], dtype=np.object_)
    for binary in (False, True):
        assert handler_input(decode_request(*body_for({"text": ("BYTES", text)}, binary))) == [
            "리뷰 텍스트"
        ]
    raw = np.array([b"\xff\xfe"], dtype=np.object_)
    assert handler_input(decode_request(*body_for({"text": ("BYTES", raw)}, True))) == [b"\xff\xfe"]


def test_a_handler_may_write_to_arrays_from_binary_data() -> None:
    body, length = body_for({"x": ("FP32", np.ones((1, 4), np.float32))}, True)
    request = pickle.loads(pickle.dumps(decode_request(body, length), protocol=5))
    seen = handler_input(request)
    seen *= 2
    np.testing.assert_array_equal(seen, [[2, 2, 2, 2]])


def test_several_inputs_reach_a_handler_by_name() -> None:
    ids = np.array([[1, 2, 3]], dtype=np.int64)
    body, length = body_for({"ids": ("INT64", ids), "mask": ("BOOL", ids > 1)}, True)
    seen = handler_input(decode_request(body, length))
    assert list(seen) == ["ids", "mask"]
    np.testing.assert_array_equal(seen["mask"], [[False, True, True]])


def test_nested_and_flat_data_are_the_same_tensor() -> None:
    entry = {"name": "x", "datatype": "FP32", "shape": [2, 2]}
    flat = decoded({"inputs": [{**entry, "data": [1, 2, 3, 4]}]}).inputs[0].data
    nested = decoded({"inputs": [{**entry, "data": [[1, 2], [3, 4]]}]}).inputs[0].data
    np.testing.assert_array_equal(flat, nested)
    assert flat.dtype == np.float32 and flat.shape == (2, 2)


def test_parameters_are_kept_without_the_extension_s_own() -> None:
    request = decoded(
        {
            "id": "7",
            "parameters": {"binary_data_output": True, "priority": 1},
            "inputs": [
                {
                    "name": "x",
                    "datatype": "UINT8",
                    "shape": [2],
                    "parameters": {"binary_data_size": 2, "note": "a"},
                }
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": False, "top": 1}}],
        },
        b"\x01\x02",
    )
    assert request.parameters == {"priority": 1} and request.binary_output
    assert request.inputs[0].parameters == {"note": "a"}
    assert request.outputs == (RequestedOutput("y", False, {"top": 1}),)


class SumScores(TensorHandler):
    """A tensor handler with a stand-in model: scores are the row sum and its negation."""

    def initialize(self, context: Context) -> None:
        super().initialize(context)
        self.inputs = [TensorSpec("x", "float32", (None, 64))]

    def run(self, arrays: dict[str, np.ndarray[Any, Any]]) -> dict[str, np.ndarray[Any, Any]]:
        total = arrays["x"].sum(axis=1, keepdims=True)
        return {"scores": np.concatenate([-total, total], axis=1)}


def test_a_tensor_handler_answers_a_v2_request_unchanged(tmp_path: Path) -> None:
    manifest = Manifest(name="sums", handler="sums.py", labels=["negative", "positive"])
    context = Context(manifest.name, manifest.version, tmp_path, manifest)
    handler = SumScores()
    handler.initialize(context)
    array = np.full((1, 64), 0.5, np.float32)
    request = decode_request(*body_for({"x": ("FP32", array)}, True))
    (answer,) = handler.handle([CODEC.decode(request)], context)
    result = read_answer(CODEC.encode(answer, request, MODEL))
    assert as_text(result.as_numpy("label")) == ["positive"]
    np.testing.assert_array_equal(result.as_numpy("confidence"), [32.0])
    np.testing.assert_array_equal(result.as_numpy("probabilities"), [[-32.0, 32.0]])


# --- requested outputs -----------------------------------------------------------------


def test_requested_outputs_are_answered_in_their_order_and_encoding() -> None:
    outputs = [
        triton.InferRequestedOutput("c", binary_data=True),
        triton.InferRequestedOutput("a", binary_data=False),
    ]
    body, length = body_for({"x": ("FP32", np.zeros((1, 2), np.float32))}, False, outputs)
    request = decode_request(body, length)
    answer = {"a": [1, 2], "b": "unasked", "c": np.array([[0.25]], np.float32)}
    result = read_answer(CODEC.encode(answer, request, MODEL))
    entries = result.get_response()["outputs"]
    assert [entry["name"] for entry in entries] == ["c", "a"]
    assert entries[1] == {"name": "a", "datatype": "INT64", "shape": [2], "data": [1, 2]}
    np.testing.assert_array_equal(result.as_numpy("c"), [[0.25]])


def test_a_requested_output_the_answer_lacks_is_a_400_naming_both() -> None:
    request = request_of(outputs=(RequestedOutput("probs"),))
    with pytest.raises(InvalidInput, match=r'"probs".*"label", "confidence"'):
        answer_tensors([{"label": "pos", "confidence": 0.9}], request)
    response = CODEC.encode({"label": "pos"}, request, MODEL)
    assert response.status == 400
    assert "probs" in orjson.loads(response.body)["error"]


# --- answers → tensors ---------------------------------------------------------------


def test_labelled_answers_stack_into_one_tensor_per_key() -> None:
    rows = [
        {
            "label": "positive",
            "confidence": 0.9,
            "probabilities": {"negative": 0.1, "positive": 0.9},
        },
        {
            "label": "negative",
            "confidence": 0.8,
            "probabilities": {"negative": 0.8, "positive": 0.2},
        },
    ]
    label, confidence, probabilities = answer_tensors(rows, request_of())
    assert (label.datatype, label.shape, list(label.data)) == (
        "BYTES",
        (2,),
        ["positive", "negative"],
    )
    assert (confidence.datatype, confidence.shape) == ("FP64", (2,))
    assert (probabilities.datatype, probabilities.shape) == ("FP64", (2, 2))
    np.testing.assert_array_equal(probabilities.data, [[0.1, 0.9], [0.8, 0.2]])


def test_one_labelled_answer_and_the_nsmc_list_of_one() -> None:
    single = answer_tensors({"label": "pos", "probabilities": {"a": 0.25, "b": 0.75}}, request_of())
    assert [(t.name, t.datatype, t.shape) for t in single] == [
        ("label", "BYTES", (1,)),
        ("probabilities", "FP64", (2,)),
    ]
    nsmc = answer_tensors([{"label": "positive", "confidence": 0.9731}], request_of())
    assert [(t.name, t.shape) for t in nsmc] == [("label", (1,)), ("confidence", (1,))]


def test_outputs_wrappers_are_unwrapped() -> None:
    wrapped = answer_tensors({"outputs": {"logits": [[1.0, 2.0]], "ids": [[3]]}}, request_of())
    assert [(t.name, t.datatype, t.shape) for t in wrapped] == [
        ("logits", "FP64", (1, 2)),
        ("ids", "INT64", (1, 1)),
    ]
    rows = answer_tensors([{"outputs": {"logits": [1.0, 2.0]}}] * 3, request_of())
    assert [(t.name, t.shape) for t in rows] == [("logits", (3, 2))]


@pytest.mark.parametrize(
    ("value", "datatype", "shape"),
    [
        (np.zeros((2, 3), np.float32), "FP32", (2, 3)),
        (np.array([True]), "BOOL", (1,)),
        (np.uint16(5), "UINT16", (1,)),
        ([[1, 2], [3, 4]], "INT64", (2, 2)),
        (3.5, "FP64", (1,)),
        (7, "INT64", (1,)),
        (False, "BOOL", (1,)),
        ("text", "BYTES", (1,)),
        (b"\x00raw\x00", "BYTES", (1,)),
        (["a", b"b\x00"], "BYTES", (2,)),
        (np.array(["x", "yz"]), "BYTES", (2,)),
        ([], "FP64", (0,)),
    ],
)
def test_bare_values_are_output0(value: Any, datatype: str, shape: tuple[int, ...]) -> None:
    (tensor,) = answer_tensors(value, request_of())
    assert (tensor.name, tensor.datatype, tensor.shape) == ("output0", datatype, shape)
    assert tensor.data.shape == shape


def test_bytes_keep_their_trailing_zeros() -> None:
    (tensor,) = answer_tensors([b"a\x00\x00"], request_of())
    assert tensor.data[0] == b"a\x00\x00"


def test_tensors_from_a_handler_pass_through() -> None:
    given_tensor = Tensor("y", "INT8", (2,), np.array([1, -1], np.int8))
    assert answer_tensors([given_tensor], request_of()) == [given_tensor]
    with pytest.raises(HandlerError, match="shape"):
        answer_tensors([given_tensor._replace(shape=(3,))], request_of())


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ([[1, 2], [3]], "not a rectangular array"),
        ([1, "a"], "int 1 cannot be an element"),
        ([None, 1.0], "NoneType"),
        ({"x": None}, 'output "x" is None'),
        (None, "is None"),
        ([2**70], "past 64 bits"),
        (np.array([1j]), "complex128"),
        ([{"a": 1}, {"b": 2}], "differ in their keys"),
        ({"p": {"a": {"b": 1}}}, "dict inside a dict"),
        (object(), "cannot be an element"),
    ],
)
def test_answers_that_are_no_tensors_are_the_handler_s_fault(value: Any, fragment: str) -> None:
    with pytest.raises(HandlerError, match=fragment):
        answer_tensors(value, request_of())
    response = CODEC.encode(value, request_of(), MODEL)
    assert response.status == 500 and fragment.split()[0] in orjson.loads(response.body)["error"]


def test_nan_is_refused_in_json_and_carried_in_binary() -> None:
    value = {"scores": np.array([1.0, math.nan, math.inf])}
    response = CODEC.encode(value, request_of(), MODEL)
    assert response.status == 500
    assert "binary_data" in orjson.loads(response.body)["error"]
    binary = CODEC.encode(value, request_of(binary_output=True), MODEL)
    got = read_answer(binary).as_numpy("scores")
    assert np.isnan(got[1]) and got[2] == math.inf


def test_bytes_that_are_not_text_need_binary() -> None:
    response = CODEC.encode([b"\xff"], request_of(), MODEL)
    assert response.status == 500 and "UTF-8" in orjson.loads(response.body)["error"]
    answer = read_answer(CODEC.encode([b"\xff"], request_of(binary_output=True), MODEL))
    assert list(answer.as_numpy("output0")) == [b"\xff"]


# --- errors ------------------------------------------------------------------------------


def test_errors_are_v2_error_bodies() -> None:
    assert orjson.loads(error_body("no model")) == {"error": "no model"}
    refused = CODEC.error(InvalidInput("bad review"), request_of(), debug=False)
    assert (refused.status, orjson.loads(refused.body)) == (400, {"error": "bad review"})
    try:
        raise ValueError("boom")
    except ValueError as error:
        crashed = CODEC.error(error, request_of(), debug=True)
    assert crashed.status == 500 and crashed.content_type == "application/json"
    message = orjson.loads(crashed.body)["error"]
    assert message.startswith("ValueError: boom") and "Traceback" in message
    busy = CODEC.error(QueueFull(), request_of(), debug=False)
    assert busy.status == 503 and ("Retry-After", "1") in busy.headers


def test_the_registry_finds_the_codec() -> None:
    assert codec("v2") is CODEC and CODEC.tag == "v2" and not CODEC.streams


def test_an_encoded_response_from_the_handler_passes_through() -> None:
    own = InferenceResponse(202, "text/plain", b"later")
    assert CODEC.encode(own, request_of(), MODEL) is own


# --- malformed requests ------------------------------------------------------------------

X = {"name": "x", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ([X], "must be a JSON object"),
        ({}, '"inputs" must be a non-empty list'),
        ({"inputs": []}, '"inputs" must be a non-empty list'),
        ({"inputs": {"x": X}}, '"inputs" must be a non-empty list'),
        ({"inputs": [3]}, '"inputs"[0] must be an object'),
        ({"inputs": [{**X, "name": 1}]}, 'needs a "name"'),
        ({"inputs": [{**X, "name": ""}]}, 'needs a "name"'),
        ({"inputs": [{k: v for k, v in X.items() if k != "name"}]}, 'needs a "name"'),
        ({"inputs": [X, X]}, '"x" is used twice'),
        ({"inputs": [{**X, "datatype": "FP128"}]}, "'FP128' is not one of BOOL"),
        ({"inputs": [{**X, "datatype": ["FP32"]}]}, "is not one of"),
        ({"inputs": [{k: v for k, v in X.items() if k != "shape"}]}, 'has no "shape"'),
        ({"inputs": [{**X, "shape": 2}]}, '"shape" must be a list'),
        ({"inputs": [{**X, "shape": "2"}]}, '"shape" must be a list'),
        ({"inputs": [{**X, "shape": [-2]}]}, "integers >= 0"),
        ({"inputs": [{**X, "shape": [2.0]}]}, "integers >= 0"),
        ({"inputs": [{**X, "shape": [True, 2]}]}, "integers >= 0"),
        ({"inputs": [{**X, "shape": [1] * 40}]}, "40 dimensions"),
        ({"inputs": [{k: v for k, v in X.items() if k != "data"}]}, 'neither "data"'),
        ({"inputs": [{**X, "data": 1.0}]}, '"data" must be a list'),
        ({"inputs": [{**X, "data": [1.0]}]}, "1 values, expected 2 for shape [2]"),
        ({"inputs": [{**X, "data": [[1.0], 2.0]}]}, "mixes lists and values"),
        ({"inputs": [{**X, "data": [1.0, "2"]}]}, "FP32 data holds the string '2'"),
        ({"inputs": [{**X, "data": [1.0, None]}]}, "FP32 data holds null"),
        ({"inputs": [{**X, "data": [1.0, True]}]}, "FP32 data holds true"),
        ({"inputs": [{**X, "data": [1.0, {}]}]}, "an object"),
        ({"inputs": [{**X, "data": [1e300, 0]}]}, "out of range for FP32"),
        ({"inputs": [{**X, "datatype": "INT64", "data": [1, 2.5]}]}, "the number 2.5"),
        ({"inputs": [{**X, "datatype": "INT8", "data": [1, 128]}]}, "128 is out of range"),
        ({"inputs": [{**X, "datatype": "UINT8", "data": [-1, 0]}]}, "-1 is out of range"),
        ({"inputs": [{**X, "datatype": "INT64", "data": [2**63, 0]}]}, "out of range"),
        ({"inputs": [{**X, "datatype": "UINT64", "data": [2**64, 0]}]}, "UINT64 data holds"),
        ({"inputs": [{**X, "datatype": "BOOL", "data": [1, 0]}]}, "BOOL data holds the number 1"),
        ({"inputs": [{**X, "datatype": "BYTES", "data": ["a", 1]}]}, "BYTES data holds"),
        ({"inputs": [{**X, "parameters": []}]}, '"parameters" must be an object'),
        ({"inputs": [X], "parameters": "x"}, '"parameters" must be an object'),
        ({"inputs": [X], "id": 5}, '"id" must be a string'),
        ({"inputs": [X], "parameters": {"binary_data_output": 1}}, "must be true or false"),
        ({"inputs": [X], "outputs": {"y": {}}}, '"outputs" must be a list'),
        ({"inputs": [X], "outputs": ["y"]}, '"outputs"[0] must be an object'),
        ({"inputs": [X], "outputs": [{"parameters": {}}]}, 'needs a "name"'),
        ({"inputs": [X], "outputs": [{"name": "y"}, {"name": "y"}]}, "used twice"),
        (
            {"inputs": [X], "outputs": [{"name": "y", "parameters": {"binary_data": "yes"}}]},
            "binary_data",
        ),
        (
            {"inputs": [X], "outputs": [{"name": "y", "parameters": {"classification": 2}}]},
            "classification",
        ),
        (
            {"inputs": [{**X, "parameters": {"shared_memory_region": "r"}}]},
            "shared_memory_region",
        ),
        (
            {"inputs": [{**X, "data": None, "parameters": {"binary_data_size": 8}}]},
            "binary_data_size without binary data",
        ),
    ],
)
def test_malformed_json_is_a_400_that_says_why(document: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest, match=_literal(fragment)) as caught:
        decoded(document)
    assert caught.value.status == 400


def _literal(fragment: str) -> str:
    return "".join("\\" + c if c in r".^$*+?{}[]\|()" else c for c in fragment)


def binary_input(size: Any) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": size}}


@pytest.mark.parametrize(
    ("document", "binary", "fragment"),
    [
        ({"inputs": [binary_input(8)]}, b"\x00" * 4, "only 4 bytes of binary data are left"),
        ({"inputs": [binary_input(4)]}, b"\x00" * 4, "4 bytes of binary data, expected 8"),
        ({"inputs": [binary_input(8)]}, b"\x00" * 12, "the binary section has 12 bytes"),
        ({"inputs": [X]}, b"\x00", "add up to 0"),
        ({"inputs": [binary_input(-8)]}, b"\x00" * 8, "must be an integer >= 0"),
        ({"inputs": [binary_input(8.0)]}, b"\x00" * 8, "must be an integer >= 0"),
        ({"inputs": [binary_input(True)]}, b"\x00" * 8, "must be an integer >= 0"),
        ({"inputs": [{**binary_input(8), "data": [1, 2]}]}, b"\x00" * 8, "both"),
        ({"inputs": [{**binary_input(2), "datatype": "BOOL"}]}, b"\x00\x02", "other than 0, 1"),
        (
            {"inputs": [{**binary_input(7), "datatype": "BYTES", "shape": [1]}]},
            b"\x05\x00\x00\x00abc",
            "claims 5 bytes, 3 are left",
        ),
        (
            {"inputs": [{**binary_input(9), "datatype": "BYTES", "shape": [1]}]},
            b"\x01\x00\x00\x00a\x00\x00\x00\x00",
            "4 bytes of BYTES data left",
        ),
        (
            {"inputs": [{**binary_input(6), "datatype": "BYTES", "shape": [2]}]},
            b"\x01\x00\x00\x00ab",
            "cannot hold the 2 elements",
        ),
    ],
)
def test_malformed_binary_is_a_400_that_says_why(
    document: Any, binary: bytes, fragment: str
) -> None:
    with pytest.raises(InvalidRequest, match=_literal(fragment)):
        decoded(document, binary)


@pytest.mark.parametrize("length", [-1, 10**6, True])
def test_a_header_length_outside_the_body_is_refused(length: Any) -> None:
    with pytest.raises(InvalidRequest, match=HEADER_LENGTH):
        decode_request(b'{"inputs": []}', length)


def test_the_header_length_header_is_a_number_of_bytes() -> None:
    assert parse_header_length(None) is None
    assert parse_header_length(" 120 ") == 120
    for value in ("", "-1", "1e3", "0x10", "١٢", "9" * 40):
        with pytest.raises(InvalidRequest, match=HEADER_LENGTH):
            parse_header_length(value)


def test_bodies_that_are_not_json_are_refused() -> None:
    for body in (b"", b"{", b"\xff", b"[" * 100 + b"]" * 100):
        with pytest.raises(InvalidRequest):
            decode_request(body, None)


@pytest.mark.parametrize(
    ("datatype", "shape", "binary"),
    [
        ("FP32", [10**12], None),
        ("FP32", [2**31], b"\x00" * 8),
        ("FP64", [2**16, 2**16], b"\x00" * 8),
        ("BYTES", [2**30], b"\x00" * 8),
        ("BYTES", [2**31, 0], None),
        ("INT8", [0, 2**40], None),
    ],
)
def test_huge_declared_shapes_are_refused_without_allocating(
    datatype: str, shape: list[int], binary: bytes | None
) -> None:
    entry: dict[str, Any] = {"name": "x", "datatype": datatype, "shape": shape}
    if binary is None:
        entry["data"] = [0, 0]
    else:
        entry["parameters"] = {"binary_data_size": len(binary)}
    started = time.perf_counter()
    with pytest.raises(InvalidRequest):
        decoded({"inputs": [entry]}, binary)
    assert time.perf_counter() - started < 0.5


def test_an_empty_tensor_is_fine() -> None:
    request = decoded({"inputs": [{"name": "x", "datatype": "FP32", "shape": [0, 3], "data": []}]})
    assert request.inputs[0].data.shape == (0, 3)
    assert handler_input(
        decoded({"inputs": [{**X, "datatype": "BYTES", "shape": [2, 0], "data": []}]})
    ) == [
        [],
        [],
    ]


def test_a_small_request_decodes_in_microseconds() -> None:
    body = orjson.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64], "data": [0.5] * 64}]}
    )
    decode_request(body, None)
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        decode_request(body, None)
    # Tens of microseconds on a quiet machine; the bound leaves room for a shared one.
    assert (time.perf_counter() - started) / runs < 500e-6


def test_raw_bytes_round_trip_for_every_datatype() -> None:
    for datatype in DATATYPES:
        array = sample(datatype)
        raw = to_raw(Tensor("x", datatype, array.shape, array))
        back = from_raw(raw, "x", datatype, array.shape)
        if datatype == "BYTES":
            assert as_text(back) == KOREAN
        else:
            np.testing.assert_array_equal(back, array)
            assert back.dtype == array.dtype


# --- nothing but a V2Request or a 400 ----------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5)
)
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=12,
)
inputs = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["x", "y", ""]) | anything,
        "datatype": st.sampled_from(list(DATATYPES)) | anything,
        "shape": st.lists(st.integers(min_value=-1, max_value=4), max_size=3) | anything,
    },
    optional={
        "data": st.lists(scalars, max_size=9) | st.lists(st.lists(scalars, max_size=3)),
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_size": st.integers(min_value=-1, max_value=40) | anything}
        )
        | anything,
    },
)
documents = anything | st.fixed_dictionaries(
    {"inputs": st.lists(inputs, max_size=3) | anything},
    optional={
        "id": st.text(max_size=3) | anything,
        "parameters": st.fixed_dictionaries(
            {}, optional={"binary_data_output": st.booleans() | anything}
        )
        | anything,
        "outputs": st.lists(
            st.fixed_dictionaries(
                {"name": st.text(max_size=2) | anything},
                optional={"parameters": st.dictionaries(st.just("binary_data"), anything)},
            ),
            max_size=3,
        )
        | anything,
    },
)


def decodes_or_refuses(body: bytes, length: int | None) -> None:
    try:
        request = decode_request(body, length)
    except PodiumError as error:
        assert error.status == 400, error
        return
    for tensor in request.inputs:
        assert tensor.data.shape == tensor.shape
        assert tensor.data.dtype == DATATYPES[tensor.datatype]
    handler_input(request)


def values_of(datatype: str) -> st.SearchStrategy[Any]:
    """JSON values for a datatype, a little past its range at times."""
    if datatype == "BOOL":
        return st.booleans()
    if datatype == "BYTES":
        return st.text(max_size=4)
    dtype = DATATYPES[datatype]
    if dtype.kind == "f":
        return st.floats(allow_nan=False, allow_infinity=False) | st.integers(-9, 9)
    info = np.iinfo(dtype)
    return st.integers(int(info.min) - 1, int(info.max) + 1)


@st.composite
def near_valid(draw: st.DrawFn) -> tuple[bytes, int | None]:
    """Requests that are valid, or wrong in one small way: a value out of range, a binary
    size off by a few bytes."""
    entries: list[dict[str, Any]] = []
    parts: list[bytes] = []
    for name in draw(
        st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3, unique=True)
    ):
        datatype = draw(st.sampled_from(list(DATATYPES)))
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        count = math.prod(shape)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if draw(st.booleans()):
            entry["data"] = draw(st.lists(values_of(datatype), min_size=count, max_size=count))
        else:
            if datatype == "BYTES":
                texts = draw(st.lists(st.binary(max_size=4), min_size=count, max_size=count))
                array = np.empty(count, dtype=np.object_)
                array[:] = texts
                raw = to_raw(Tensor(name, datatype, (count,), array))
            else:
                width = count * DATATYPES[datatype].itemsize
                raw = draw(st.binary(min_size=width, max_size=width))
            raw = raw[: max(0, len(raw) + draw(st.sampled_from([0, 0, 0, -1, 2])))]
            raw += b"\x00" * (draw(st.sampled_from([0, 0, 0, 1])))
            parts.append(raw)
            entry["parameters"] = {"binary_data_size": len(raw)}
        entries.append(entry)
    document: dict[str, Any] = {"inputs": entries}
    if draw(st.booleans()):
        document["outputs"] = [{"name": "y", "parameters": {"binary_data": draw(st.booleans())}}]
    header = json.dumps(document).encode()
    if not parts:
        return header, None
    return header + b"".join(parts), len(header)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=near_valid())
def test_near_valid_requests_decode_or_are_a_400(body: tuple[bytes, int | None]) -> None:
    decodes_or_refuses(*body)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=documents, binary=st.none() | st.binary(max_size=48))
def test_any_document_decodes_or_is_a_400(document: Any, binary: bytes | None) -> None:
    header = json.dumps(document).encode()
    if binary is None:
        decodes_or_refuses(header, None)
    else:
        decodes_or_refuses(header + binary, len(header))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64), length=st.none() | st.integers(min_value=-4, max_value=80))
def test_any_bytes_decode_or_are_a_400(body: bytes, length: int | None) -> None:
    decodes_or_refuses(body, length)
