"""The registry: loaded model versions, each with its worker pool and batcher.

The store says what archives exist; the registry unpacks the chosen ones into a private
folder, starts their workers, and answers "which version serves this request?".
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podium import archive, protocols
from podium.archive import requirements
from podium.backends.base import Backend
from podium.core.store import ModelStore, StoredArchive, default_version
from podium.errors import Conflict, InvalidRequest, ModelNotFound, PodiumError
from podium.observability.prometheus import Sample
from podium.observability.stats import Stats
from podium.protocols.torchserve import HANDLER as TORCHSERVE_HANDLER
from podium.protocols.v2.metadata import model_metadata
from podium.settings import Settings

log = logging.getLogger("podium.registry")


@dataclass
class ModelVersion:
    """One served version of a model: its manifest, the codec its ``/predictions`` route
    speaks, and the backend that runs its requests."""

    name: str
    version: str
    manifest: archive.Manifest
    model_dir: Path
    backend: Backend
    stats: Stats
    codec: str = protocols.NATIVE
    """The protocol of its native route: ``torchserve`` for a TorchServe handler, which gets
    whole HTTP requests; else ``json``."""

    @property
    def ready(self) -> bool:
        return self.backend.ready

    @property
    def failed(self) -> str | None:
        """Why the version gave up loading, or None."""
        return self.backend.failed

    @property
    def status(self) -> str:
        """``ready``, ``failed`` or ``loading`` (also: fewer than its minimum of workers)."""
        return "ready" if self.ready else "failed" if self.failed is not None else "loading"

    def v2_metadata(self, versions: list[str] | None = None) -> dict[str, Any]:
        """Its V2 model metadata (``versions``: every served version of the model, if the
        caller knows them; else this one)."""
        return model_metadata(
            self.name, versions or [self.version], self.manifest.handler, self.backend.signature
        )

    def reserve(self) -> bool:
        """Hold a place for a request whose head was read (in the queue, or in a batch for
        an idle worker) until the loop's next turn; False when there is no room."""
        backend = self.backend
        if backend.room > 0:
            backend.reserve()
            return True
        return False

    def hold(self, resume: Callable[[], None]) -> None:
        """Keep a refused connection unread until the version has room (``resume`` is called
        then) or ``Retry-After`` has passed."""
        self.backend.hold(resume)


BackendFactory = Callable[[archive.Manifest, Path, Stats, "BackendOptions"], Backend]


@dataclass(frozen=True)
class BackendOptions:
    """What the registry decided for one version's backend, from settings and manifest."""

    minimum: int
    maximum: int
    request_timeout: float
    settings: Settings


def local_backend(
    manifest: archive.Manifest, model_dir: Path, stats: Stats, options: BackendOptions
) -> Backend:
    """The default backend: worker processes on this machine."""
    from podium.backends.local.backend import LocalBackend

    settings = options.settings
    return LocalBackend.create(
        f"{manifest.name}/{manifest.version}",
        model_dir,
        stats=stats,
        minimum=options.minimum,
        maximum=options.maximum,
        batch_size=manifest.batch_size,
        max_batch_delay=manifest.max_batch_delay,
        batching=settings.batching or manifest.batching,
        max_queue=settings.max_queue,
        request_timeout=options.request_timeout,
        load_timeout=settings.load_timeout,
        scale_down_after=settings.scale_down_after,
        watchdog_grace=settings.watchdog_grace,
        max_load_failures=settings.max_load_failures,
        debug=settings.debug,
    )


class Registry:
    """Every loaded model version, by name and version."""

    def __init__(self, settings: Settings, backend: BackendFactory = local_backend) -> None:
        self.settings = settings
        self.backend_factory = backend
        """Makes each version's backend (``local_backend``: worker processes here)."""
        self.models: dict[str, dict[str, ModelVersion]] = {}
        self.defaults: dict[str, str] = {}
        self._pinned: set[str] = set()
        self.generation = 0
        """Bumped whenever what ``resolve`` answers may change (for callers that cache)."""
        self.starting = True
        """The model store is still being loaded (``/ping`` is unhealthy until it is)."""
        self._work_dir: Path | None = None
        self._own_work_dir = False

    @property
    def work_dir(self) -> Path:
        if self._work_dir is None:
            if self.settings.work_dir is not None:
                self._work_dir = self.settings.work_dir
                self._work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            else:
                self._work_dir = Path(tempfile.mkdtemp(prefix="podium-"))
                self._own_work_dir = True
        return self._work_dir

    async def load_store(self) -> list[str]:
        """Load every archive of the store (or the named models); return the problems."""
        store = ModelStore(self.settings.model_store)
        found, problems = store.scan(self.settings.models or None)
        if not found:
            log.warning("no model to serve in %s", store.root)
        for stored in found:
            log.info("loading %s from %s", stored.manifest.key, stored.path.name)
        missing = set(self.settings.models) - {
            name for stored in found for name in (stored.name, stored.path.name)
        }
        problems += [f"model {name!r} is not in {store.root}" for name in sorted(missing)]
        try:
            results = await asyncio.gather(
                *(self.load(stored) for stored in found), return_exceptions=True
            )
        finally:
            self.starting = False
        for stored, result in zip(found, results, strict=True):
            if isinstance(result, ModelVersion) and result.failed is not None:
                problems.append(f"{result.manifest.key} failed to load: {result.failed}")
            elif isinstance(result, PodiumError):
                problems.append(result.message)
            elif isinstance(result, BaseException):
                problems.append(f"{stored.path.name}: {type(result).__name__}: {result}")
        for line in problems:
            log.error("%s", line)
        return problems

    async def load(
        self, stored: StoredArchive, request_timeout: float | None = None
    ) -> ModelVersion:
        """Unpack, verify and start one archive (``request_timeout`` over the settings')."""
        settings = self.settings
        manifest = stored.manifest
        chosen = settings.model_settings.get(manifest.key) or settings.model_settings.get(
            manifest.name
        )
        fixed = settings.workers
        if chosen is not None:
            overrides = chosen.manifest_fields()
            manifest = archive.Manifest.model_validate({**manifest.model_dump(), **overrides})
            if "min_workers" in overrides or "max_workers" in overrides:
                fixed = None
        model_dir = self.work_dir / f"{manifest.name}-{manifest.version}"
        if model_dir.exists():
            shutil.rmtree(model_dir)
        archive.unpack(
            stored.path,
            model_dir,
            archive.UnpackLimits(settings.max_unpacked_bytes, settings.max_compression_ratio),
        )
        # The worker reads the manifest from the folder: it must see any overrides.
        (model_dir / archive.MANIFEST_PATH).write_text(manifest.model_dump_json(indent=2))
        if manifest.requirements and settings.install_requirements:
            await requirements.install(
                model_dir, manifest.requirements, manifest.key, settings.load_timeout
            )
        elif manifest.requirements:
            log.warning(
                "%s names %s; it is not installed (--install-requirements installs it)",
                manifest.key,
                manifest.requirements,
            )
        workers = fixed or max(1, manifest.min_workers)
        timeout = request_timeout or (chosen and chosen.request_timeout) or settings.request_timeout
        options = BackendOptions(
            workers, max(workers, fixed or manifest.max_workers), timeout, settings
        )
        stats = Stats()
        version = ModelVersion(
            manifest.name,
            manifest.version,
            manifest,
            model_dir,
            self.backend_factory(manifest, model_dir, stats, options),
            stats,
            protocols.TORCHSERVE if manifest.handler == TORCHSERVE_HANDLER else protocols.NATIVE,
        )
        versions = self.models.setdefault(manifest.name, {})
        versions[manifest.version] = version
        self.generation += 1
        await version.backend.start()
        # A new version becomes the default only once it is ready (unless one was set),
        # so registering it under load fails no request.
        pinned = settings.model_settings.get(manifest.key)
        if pinned is not None and pinned.default:
            self.set_default(manifest.name, manifest.version)
        elif manifest.name not in self._pinned:
            ready = [v for v, served in versions.items() if served.ready]
            self.defaults[manifest.name] = default_version(ready or list(versions))
        self.generation += 1
        return version

    async def register(
        self,
        path: Path,
        overrides: dict[str, Any],
        expected_name: str | None = None,
        request_timeout: float | None = None,
        keep_failed: bool = False,
    ) -> ModelVersion:
        """Load an archive of the store (``path`` relative to it) with settings overridden
        (``overrides`` of its manifest, and its own request timeout).

        A version that fails to load is removed again and ``ModelFailed`` raised, unless
        ``keep_failed`` (then it stays listed as failed). A failed version may be registered
        again: it is replaced."""
        root = self.settings.model_store.resolve()
        target = (root / path).resolve()
        if path.is_absolute() or not target.is_relative_to(root) or not target.is_file():
            raise InvalidRequest(f"{path} is not an archive in the model store")
        manifest = archive.read_manifest(target)
        if expected_name and expected_name != manifest.name:
            raise InvalidRequest(
                f"the archive holds model {manifest.name!r}, not {expected_name!r}"
            )
        present = self.models.get(manifest.name, {}).get(manifest.version)
        if present is not None and present.failed is None:
            raise Conflict(f"{manifest.key} is already registered")
        try:
            manifest = archive.Manifest.model_validate({**manifest.model_dump(), **overrides})
        except ValueError as error:
            raise InvalidRequest(f"invalid setting: {error}") from None
        if present is not None:
            await self._remove(present)
        served = await self.load(StoredArchive(target, manifest), request_timeout)
        if served.failed is not None:
            failure = served.backend.failure(served.failed)
            if not keep_failed:
                await self._remove(served)
            raise failure
        return served

    async def unregister(self, name: str, version: str) -> None:
        """Stop routing to a version, let its queued and running requests finish, stop it."""
        served = self.resolve(name, version)
        versions = self.models[name]
        if self.defaults.get(name) == version and len(versions) > 1:
            raise Conflict(f"{name}/{version} is the default; set another default first")
        await self._remove(served)

    async def _remove(self, served: ModelVersion) -> None:
        """Stop routing to a version, drain it (up to ``drain_timeout``), stop it."""
        self.generation += 1
        versions = self.models.get(served.name, {})
        if versions.get(served.version) is served:
            del versions[served.version]
        if not versions:
            self.models.pop(served.name, None)
            self.defaults.pop(served.name, None)
            self._pinned.discard(served.name)
        elif self.defaults.get(served.name) == served.version:
            self.defaults[served.name] = default_version(list(versions))
        deadline = time.monotonic() + self.settings.drain_timeout
        while served.backend.busy and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        await served.backend.stop()
        shutil.rmtree(served.model_dir, ignore_errors=True)

    def set_default(self, name: str, version: str) -> None:
        self.resolve(name, version)
        self.defaults[name] = version
        self.generation += 1
        self._pinned.add(name)

    def resolve(self, name: str, version: str | None = None) -> ModelVersion:
        """The version that serves a request, or ``ModelNotFound``."""
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFound(f"Model {name!r} not found")
        if version is None:
            # Before any version is ready there is no default yet: the highest one
            # answers (503 until it has a worker).
            version = self.defaults.get(name) or default_version(list(versions))
        served = versions.get(version)
        if served is None:
            raise ModelNotFound(f"Model {name!r} has no version {version!r}")
        return served

    def default_model(self) -> str:
        """The model ``POST /predict`` serves when none is named: ``--default-model``, else
        the only model; with several and no default, a 400 that lists them and says how
        to pick (a guess by name order would answer from the wrong model)."""
        wanted = self.settings.default_model
        if wanted:
            return wanted
        if not self.models:
            raise ModelNotFound("No model is loaded")
        if len(self.models) == 1:
            return next(iter(self.models))
        names = ", ".join(sorted(self.models))
        raise InvalidRequest(
            f"Several models are served ({names}): name one with ?model=NAME or "
            "POST /predictions/NAME, or start the server with --default-model NAME"
        )

    def versions(self) -> list[ModelVersion]:
        return [v for versions in self.models.values() for v in versions.values()]

    def samples(self) -> list[Sample]:
        """Every version's counters and gauges, for a metrics scrape."""
        samples = []
        for v in self.versions():
            status = v.backend.status()
            samples.append(
                Sample(
                    v.name,
                    v.version,
                    v.stats,
                    status.queue_depth,
                    status.states,
                    status.restarts,
                    status.dropped,
                    v.status,
                )
            )
        return samples

    @property
    def healthy(self) -> bool:
        """The store is loaded, and every version has at least its minimum of live workers,
        or failed for good (unless ``strict_health``: then a failed version is unhealthy).

        Versions registered later count once they are loading; until then the server
        keeps serving the others and stays healthy."""
        strict = self.settings.strict_health
        return not self.starting and all(
            v.ready or (v.failed is not None and not strict) for v in self.versions()
        )

    def failures(self) -> list[dict[str, str]]:
        """The failed versions, each with the reason."""
        return [
            {"model": v.name, "version": v.version, "error": v.failed}
            for v in self.versions()
            if v.failed is not None
        ]

    def abandon(self, error: PodiumError) -> None:
        """Answer every queued and running request of every version with ``error``."""
        for served in self.versions():
            served.backend.abandon(error)

    async def stop(self, timeout: float = 10.0) -> None:
        await asyncio.gather(*(v.backend.stop(timeout) for v in self.versions()))
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)
