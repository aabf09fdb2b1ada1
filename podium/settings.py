"""One ``Settings`` object: command-line flags, then ``PODIUM_*`` variables, then podium.toml.

The CLI builds its ``serve`` options from these fields (the docstrings are the help text),
so an option is declared once, here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class ModelSettings(BaseModel):
    """What the server sets for one model (or one version), over what its archive says."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    batch_size: int | None = Field(default=None, ge=1, le=4096)
    """Largest batch."""
    max_batch_delay: float | None = Field(default=None, ge=0, le=60_000)
    """Milliseconds to wait for a batch."""
    min_workers: int | None = Field(default=None, ge=0, le=64)
    """Workers started with the model (wins over ``workers``)."""
    max_workers: int | None = Field(default=None, ge=1, le=64)
    """Most workers the model may have (wins over ``workers``)."""
    request_timeout: float | None = Field(default=None, gt=0)
    """Seconds a request to this model may take (over the server's ``request_timeout``)."""
    default: bool = False
    """This version is the model's default (for a ``name/version`` entry)."""

    def manifest_fields(self) -> dict[str, int | float]:
        """The fields that override the archive's manifest."""
        names = ("batch_size", "max_batch_delay", "min_workers", "max_workers")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


class Settings(BaseSettings):
    """How a Podium server runs. Every field is also ``PODIUM_<NAME>`` and a podium.toml key."""

    model_config = SettingsConfigDict(
        env_prefix="PODIUM_",
        toml_file="podium.toml",
        extra="forbid",
        use_attribute_docstrings=True,
    )

    model_store: Path = Path("model_store")
    """Folder of archives to serve."""
    models: list[str] = Field(default_factory=list)
    """Models to load, by name or archive file name (all models in the store when empty)."""
    model_settings: dict[str, ModelSettings] = Field(default_factory=dict)
    """Per model ("name") or version ("name/version"): batching, workers, timeout and
    default, over what the archive says (podium.toml, PODIUM_MODEL_SETTINGS as JSON, or
    --ts-config's models)."""
    default_model: str | None = None
    """Model that ``POST /predict`` serves (with several models and none named here,
    /predict asks the client to name one)."""
    host: str = "127.0.0.1"
    """Address the inference API binds; loopback unless you ask."""
    port: int = Field(default=8080, ge=0, le=65535)
    """Port of the inference API."""
    grpc_port: int = Field(default=8085, ge=0, le=65535)
    """Port of the V2 gRPC API (GRPCInferenceService), on the inference API's host and
    behind its token (0 turns it off; needs the podium[grpc] extra)."""
    management_host: str = "127.0.0.1"
    """Address the management API binds; keep it on loopback."""
    management_port: int = Field(default=8081, ge=0, le=65535)
    """Port of the management API (0 turns it off)."""
    management_token: str | None = None
    """Bearer token for the management API (generated and written to token_file if unset)."""
    token_file: Path = Path("podium-token")
    """Where a generated management token is written (mode 0600); a generated inference
    token goes next to it, with the suffix .inference."""
    inference_token: str | None = None
    """Bearer token for the inference API. A given token is always required, on loopback
    too; unset, one is generated (and written next to token_file) whenever the inference
    API listens beyond loopback and auth is on."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names requests may carry besides the bound address and, on loopback,
    localhost/127.0.0.1/::1 (others get 421: DNS rebinding); ["*"] turns the check off.
    Beyond loopback, Host is checked only when this is set."""
    auth: bool = True
    """Require the inference token on a non-loopback address (--no-auth: explicitly not;
    a given inference_token is required all the same)."""
    allowed_urls: list[str] = Field(default_factory=list)
    """URL prefixes archives may be registered from (empty: registration by URL is off)."""
    max_archive_bytes: int = Field(default=4 * 1024**3, ge=1)
    """Largest archive fetched from an allowed URL."""
    download_timeout: float = Field(default=300.0, gt=0)
    """Seconds a download from an allowed URL may take in all, however slowly the origin
    sends (past it the registration is answered 504 and nothing is kept)."""
    max_unpacked_bytes: int = Field(default=16 * 1024**3, ge=1)
    """Most bytes one archive may unpack to, counted as they are written (whatever its
    zip headers say); larger archives are refused."""
    max_compression_ratio: float = Field(default=200.0, ge=1)
    """Most times its own size an archive may unpack to (zip bombs); any archive may
    unpack to 16 MiB."""
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1)
    """Largest request body accepted; larger ones get 413."""
    max_response_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    """Largest answer a model may return; larger ones are answered 500."""
    request_timeout: float = Field(default=30.0, gt=0)
    """Seconds a request may wait and run before it is answered 504."""
    client_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client may take to send one request's head and body (slow clients get
    408 and are disconnected)."""
    load_timeout: float = Field(default=120.0, gt=0)
    """Seconds a worker may take to load its model before it is killed and restarted."""
    max_queue: int = Field(default=1000, ge=1)
    """Requests waiting per model version; past it requests get 503 at once."""
    watchdog_grace: float = Field(default=5.0, gt=0)
    """Seconds a batch may run past its requests' deadline (they got 504 by then) before
    its worker counts as stuck and is killed and replaced."""
    max_load_failures: int = Field(default=5, ge=1)
    """Failed loads in a row after which a model version is failed: it stops retrying and
    answers 503 ModelFailed, until it is registered again or scaled."""
    strict_health: bool = False
    """/ping is unhealthy while any model version is failed (by default a failed version
    is listed in the answer and the others keep the server healthy)."""
    hold_refused: bool = True
    """Do not read a connection refused for a full queue again until Retry-After has passed
    or the model has idle capacity (clients that retry at once cannot then keep the server
    busy refusing them)."""
    drain_timeout: float = Field(default=30.0, ge=0)
    """Seconds SIGTERM waits for in-flight requests before the server exits."""
    batching: Literal["adaptive", "fixed"] | None = None
    """Override every archive's batching policy (adaptive: dispatch as soon as a worker is
    idle; fixed: wait up to max_batch_delay for a full batch)."""
    workers: int | None = Field(default=None, ge=1, le=64)
    """Override every archive's worker count (fixed: no scaling)."""
    scale_down_after: float = Field(default=60.0, gt=0)
    """Seconds a worker above a model's min_workers may stay idle before it is stopped."""
    debug: bool = False
    """Put tracebacks in 500 answers and log at debug level."""
    access_log: bool = False
    """Log every request (uvicorn's access log)."""
    prediction_log: Path | None = None
    """SQLite file that records a sample of requests and their answers (podium log reads
    it; unset: off)."""
    prediction_log_sampling: float = Field(default=1.0, ge=0, le=1)
    """Share of requests the prediction log records (0 to 1)."""
    prediction_log_max_bytes: int = Field(default=256 * 1024**2, ge=1)
    """Size past which the prediction log is renamed to PATH.1 and a new one started."""
    work_dir: Path | None = None
    """Where archives are unpacked (a private temporary folder when unset)."""
    install_requirements: bool = False
    """pip-install an archive's requirements file for its model alone before loading it
    (runs code from the package index; off by default)."""

    @field_validator("models")
    @classmethod
    def _torchserve_models(cls, models: list[str]) -> list[str]:
        """TorchServe's --models syntax works too: ``all``, and ``name=file.mar``."""
        if "all" in models:
            return []
        return [entry.rpartition("=")[2] for entry in models]

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
