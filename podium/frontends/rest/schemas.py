"""The JSON shapes the REST routes answer, as pydantic models for the OpenAPI documents.

They document; they never validate or filter an answer (the routes build their answers
themselves, and the inference routes skip FastAPI altogether). The V2 models carry the
Open Inference Protocol's own names.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    """Every error on both ports (but ``/v2``): ``podium.errors.ErrorBody`` as JSON."""

    code: int = Field(description="The HTTP status, repeated")
    type: str = Field(description="The error's class: InvalidRequest, ModelNotFound, QueueFull…")
    message: str = Field(description="What went wrong, for a person")


class V2Error(BaseModel):
    """A ``/v2`` error, as the Open Inference Protocol has it."""

    error: str


class FailedVersion(BaseModel):
    model: str
    version: str
    error: str


class Health(BaseModel):
    """``/ping``: Healthy once every model version is ready or failed for good."""

    status: Literal["Healthy", "Unhealthy"]
    failed: list[FailedVersion] | None = Field(
        None, description="Versions whose loads failed past their budget (absent if none)"
    )


class Status(BaseModel):
    """A management call's outcome, in words."""

    status: str


class Token(BaseModel):
    """A fresh management token (the old one stops working at once)."""

    token: str


class ModelEntry(BaseModel):
    modelName: str  # TorchServe's field names
    modelUrl: str


class ModelList(BaseModel):
    """One page of the registered models, sorted by name."""

    models: list[ModelEntry]
    nextPageToken: str | None = Field(
        None, description="Pass as next_page_token for the next page (absent on the last)"
    )


class Worker(BaseModel):
    id: int
    pid: int | None
    state: str
    memoryUsage: int | None = Field(description="Resident bytes, where /proc tells")


class ModelDescription(BaseModel):
    """One version, as TorchServe's describe API answers (``customized=true`` adds what a
    TorchServe handler's ``describe_handle`` says)."""

    modelName: str
    modelVersion: str
    default: bool
    ready: bool
    status: Literal["ready", "loading", "failed"]
    error: str | None
    restarts: int
    batchSize: int
    maxBatchDelay: float
    batching: str
    minWorkers: int
    maxWorkers: int
    responseTimeout: float | None
    queueDepth: int
    workers: list[Worker]
    customizedMetadata: Any = None
    customizedStatus: int | None = None


DATATYPES = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]


class MetadataServerResponse(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for any size")


class MetadataModelResponse(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class ModelReady(BaseModel):
    name: str
    version: str
    ready: bool


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: DATATYPES
    parameters: dict[str, Any] | None = None
    data: Any = Field(
        None,
        description="Row-major values, flat or nested (absent when sent as binary data)",
    )


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{m}/infer`` as JSON (or, with the binary tensor data extension,
    this JSON then the tensors' bytes, its length in ``Inference-Header-Content-Length``)."""

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class InferenceResponse(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # the protocol's model_name

    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]
