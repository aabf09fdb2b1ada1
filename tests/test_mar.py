"""TorchServe .mar archives: reading, safe unpacking, conversion, and hostile archives."""

from __future__ import annotations

import stat
import subprocess
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import orjson
import pytest

from podium import archive
from podium.archive import mar, native
from podium.core.store import ModelStore
from podium.errors import ArchiveError
from tests.conftest import (
    HANDLERS,
    StartServer,
    lie_about_size,
    tamper,
    torch_model_archiver,
    zip_bomb,
)

FUNCTION_HANDLER = HANDLERS / "torchserve" / "function_handler"


@pytest.fixture
def scaler(tmp_path: Path) -> Path:
    """A real .mar from torch-model-archiver: a function handler and a model-config.yaml."""
    (tmp_path / "scale.json").write_text('{"scale": 2}')
    (tmp_path / "config.yaml").write_text("batchSize: 4\nmaxBatchDelay: 10\nmaxWorkers: 2\n")
    (tmp_path / "notes.txt").write_text("extra file")
    (tmp_path / "store").mkdir()
    torch_model_archiver(
        "--model-name", "scaler", "--version", "3.1",
        "--serialized-file", str(tmp_path / "scale.json"),
        "--handler", f"{FUNCTION_HANDLER}:handle",
        "--extra-files", str(tmp_path / "notes.txt"),
        "--config-file", str(tmp_path / "config.yaml"),
        "--export-path", str(tmp_path / "store"),
    )  # fmt: skip
    return tmp_path / "store" / "scaler.mar"


def write_mar(path: Path, manifest: object, members: dict[str, bytes] | None = None) -> Path:
    """A hand-made .mar, for shapes torch-model-archiver would never write."""
    with zipfile.ZipFile(path, "w") as target:
        if manifest is not None:
            raw = manifest if isinstance(manifest, bytes) else orjson.dumps(manifest)
            target.writestr(mar.MAR_MANIFEST, raw)
        for name, data in (members or {}).items():
            target.writestr(name, data)
    return path


def minimal(**model: object) -> dict[str, object]:
    return {"runtime": "python", "model": {"modelName": "m", "handler": "h.py", **model}}


def test_reads_the_manifest_and_model_config(scaler: Path) -> None:
    manifest = archive.read_manifest(scaler)
    assert (manifest.name, manifest.version) == ("scaler", "3.1")
    assert manifest.handler == "torchserve"
    assert manifest.options == {"handler": "function_handler:handle"}
    assert manifest.model_file == "scale.json"
    assert (manifest.batch_size, manifest.max_batch_delay, manifest.max_workers) == (4, 10, 2)


def test_torchserve_defaults_apply_without_a_config(tmp_path: Path) -> None:
    manifest = archive.read_manifest(write_mar(tmp_path / "m.mar", minimal()))
    assert (manifest.version, manifest.batch_size, manifest.max_batch_delay) == ("1.0", 1, 100)
    assert (manifest.min_workers, manifest.max_workers) == (1, 1)


def test_unpack_extracts_every_member_and_the_podium_manifest(scaler: Path, tmp_path: Path) -> None:
    target = tmp_path / "unpacked"
    archive.unpack(scaler, target)
    assert (target / "function_handler.py").is_file()
    assert (target / "notes.txt").read_text() == "extra file"
    assert orjson.loads((target / mar.MAR_MANIFEST).read_bytes())["model"]["modelName"] == "scaler"
    written = archive.Manifest.model_validate_json((target / archive.MANIFEST_PATH).read_bytes())
    assert written.handler == "torchserve"
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


def test_from_mar_converts_with_hashes_that_inspect_verifies(scaler: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted"
    cli = [sys.executable, "-m", "podium.cli"]
    made = subprocess.run(
        [*cli, "archive", "--from-mar", str(scaler), "-o", str(out), "--batch-size", "16"],
        capture_output=True,
        text=True,
        check=True,
    )
    converted = Path(made.stdout.strip())
    assert converted == out / "scaler-3.1.podium"
    manifest = archive.verify(converted)
    assert manifest.batch_size == 16
    assert {"function_handler.py", "scale.json", "notes.txt", mar.MAR_MANIFEST} <= set(
        manifest.files
    )
    inspected = subprocess.run([*cli, "inspect", str(converted)], capture_output=True, text=True)
    assert inspected.returncode == 0
    assert "files verified" in inspected.stderr
    tamper(converted, "scale.json", b" ")
    broken = subprocess.run([*cli, "inspect", str(converted)], capture_output=True, text=True)
    assert broken.returncode == 1
    assert "hash mismatch" in broken.stderr
    wrong_name = subprocess.run(
        [*cli, "archive", "other", "--from-mar", str(scaler), "-o", str(out)],
        capture_output=True,
        text=True,
    )
    assert wrong_name.returncode != 0
    assert "holds model 'scaler'" in wrong_name.stderr


def test_inspect_reads_a_mar(scaler: Path) -> None:
    inspected = subprocess.run(
        [sys.executable, "-m", "podium.cli", "inspect", str(scaler)], capture_output=True, text=True
    )
    assert inspected.returncode == 0
    assert '"handler": "torchserve"' in inspected.stdout
    assert "no hashes" in inspected.stderr


@pytest.mark.parametrize(
    ("manifest", "members", "message"),
    [
        (None, {"h.py": b""}, "no MAR-INF/MANIFEST.json"),
        (b"{not json", {}, "not valid JSON"),
        ({"model": {"handler": "h.py"}}, {}, "model.modelName"),
        (minimal(modelName="../../evil"), {}, "name"),
        ({**minimal(), "runtime": "LSP"}, {}, "python only"),
        (minimal(configFile="missing.yaml"), {}, "not in the archive"),
        (minimal(configFile="c.yaml"), {"c.yaml": b"- a list"}, "YAML mapping"),
        (minimal(configFile="c.yaml"), {"c.yaml": b"a: [unclosed"}, "not valid YAML"),
        (minimal(configFile="c.yaml"), {"c.yaml": b"batchSize: 0"}, "batch_size"),
        (minimal(configFile="../c.yaml"), {}, "'..'"),
        (b"[" * 100_000, {}, "not valid JSON"),
        (b" " * (native.MAX_MANIFEST_BYTES + 1), {}, "larger than"),
    ],
)
def test_malformed_mar_is_refused_with_a_clear_error(
    tmp_path: Path, manifest: object, members: dict[str, bytes], message: str
) -> None:
    path = write_mar(tmp_path / "bad.mar", manifest, members)
    with pytest.raises(ArchiveError, match=r"bad\.mar") as raised:
        archive.read_manifest(path)
    assert message in raised.value.message


@pytest.mark.parametrize("member", ["../escape.py", "/etc/evil.py", "a/../../x"])
def test_unsafe_members_are_refused_and_nothing_is_written(tmp_path: Path, member: str) -> None:
    path = write_mar(tmp_path / "evil.mar", minimal(), {member: b"import os"})
    target = tmp_path / "inside" / "model"
    with pytest.raises(ArchiveError):
        archive.unpack(path, target)
    assert not target.exists()
    assert not (tmp_path / "inside" / "escape.py").exists()


def test_symbolic_links_are_refused(tmp_path: Path) -> None:
    path = write_mar(tmp_path / "link.mar", minimal())
    with zipfile.ZipFile(path, "a") as target:
        link = zipfile.ZipInfo("h.py")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        target.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        archive.unpack(path, tmp_path / "model")


def test_other_archive_formats_get_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "model.mar"
    with tarfile.open(path, "w:gz") as target:
        target.add(__file__, "handler.py")
    with pytest.raises(ArchiveError, match="not a zip"):
        archive.read_manifest(path)
    (tmp_path / "garbage.mar").write_bytes(b"\x00" * 100)
    with pytest.raises(ArchiveError, match="not a zip"):
        archive.read_manifest(tmp_path / "garbage.mar")


def test_the_store_serves_mar_and_podium_archives_side_by_side(
    scaler: Path, tmp_path: Path, make_archive: object
) -> None:
    store = scaler.parent
    archive.pack(
        archive.Manifest(name="echo", handler="echo.py"), {"echo.py": HANDLERS / "echo.py"}, store
    )
    write_mar(store / "broken.mar", b"{")
    found, problems = ModelStore(store).scan()
    assert sorted(stored.name for stored in found) == ["echo", "scaler"]
    assert len(problems) == 1
    assert "broken.mar" in problems[0]
    by_file, _ = ModelStore(store).scan(["scaler.mar"])
    assert [stored.name for stored in by_file] == ["scaler"]


def test_a_mar_registers_through_the_management_api(
    scaler: Path, start_server: StartServer
) -> None:
    store = scaler.parent
    server = start_server("--models", "none-yet", store=store, ready=False)
    answer = server.management.post("/models", params={"url": "scaler.mar", "batch_size": 2})
    assert answer.status_code == 200, answer.text
    described = server.management.get("/models/scaler/3.1").json()[0]
    assert described["batchSize"] == 2
    result = server.http.put("/predictions/scaler", content=b"21").json()
    assert result["result"] == 42.0


def test_a_handler_named_like_a_standard_module_is_the_archives_own(
    tmp_path: Path, start_server: StartServer
) -> None:
    (tmp_path / "store").mkdir()
    handler = tmp_path / "json.py"
    handler.write_text(
        "import json as real_json\n\n"
        "def handle(data, context):\n"
        "    if data is None:\n"
        "        return None\n"
        "    return [real_json.dumps({'echo': row['body']}) for row in data]\n"
    )
    torch_model_archiver(
        "--model-name", "shadow", "--version", "1.0",
        "--handler", f"{tmp_path / 'json'}:handle",
        "--export-path", str(tmp_path / "store"),
    )  # fmt: skip
    server = start_server()
    answer = server.post("/predictions/shadow", {"a": 1})
    assert answer.status_code == 200, answer.text
    assert answer.text == '{"echo": {"a": 1}}'


BOMB_ZEROS = 64 * 1024**2


def test_a_mar_zip_bomb_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb.mar", BOMB_ZEROS, mar=True)
    target = tmp_path / "model"
    with pytest.raises(ArchiveError, match=r"bomb\.mar: .*max_compression_ratio"):
        archive.unpack(bomb, target)
    assert not target.exists()
    with pytest.raises(ArchiveError, match="max_compression_ratio"):
        archive.verify(bomb)
    limits = archive.UnpackLimits(max_bytes=1024**2, max_ratio=10_000)
    with pytest.raises(ArchiveError, match="max_unpacked_bytes"):
        archive.unpack(bomb, target, limits)
    assert not target.exists()


def test_a_mar_member_whose_header_lies_yields_only_what_the_header_says(
    tmp_path: Path,
) -> None:
    # A .mar has no hashes: a lying header with a matching CRC is not detectable, but the
    # member is cut at the size it claims, never inflated past it.
    bomb = zip_bomb(tmp_path / "bomb.mar", BOMB_ZEROS, mar=True)
    lie_about_size(bomb, "zeros.bin", 1024, crc=zlib.crc32(bytes(1024)))
    target = tmp_path / "model"
    archive.unpack(bomb, target)
    assert (target / "zeros.bin").stat().st_size == 1024
