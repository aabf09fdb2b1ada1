"""Archives: round trip, and every way a hostile or broken archive is refused."""

from __future__ import annotations

import os
import stat
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest

from podium import archive
from podium.archive import MANIFEST_PATH, Manifest, native, pack, read_manifest, unpack, verify
from podium.errors import ArchiveError
from tests.conftest import (
    HANDLERS,
    MakeArchive,
    StartServer,
    lie_about_size,
    tamper,
    zip_bomb,
)


@pytest.fixture
def packed(tmp_path: Path) -> Path:
    folder = tmp_path / "assets"
    (folder / "nested").mkdir(parents=True)
    (folder / "nested" / "vocab.txt").write_text("a\nb\n")
    files = {"echo.py": HANDLERS / "echo.py", **archive.collect_files([folder])}
    manifest = Manifest(name="echo", version="2.1", handler="echo.py", batch_size=4)
    return pack(manifest, files, tmp_path / "store")


def test_round_trip(packed: Path, tmp_path: Path) -> None:
    assert packed.name == "echo-2.1.podium"
    manifest = verify(packed)
    assert set(manifest.files) == {"echo.py", "assets/nested/vocab.txt"}
    assert manifest.podium_version and manifest.created
    assert manifest.batch_size == 4
    target = tmp_path / "unpacked"
    assert unpack(packed, target) == manifest
    assert (target / "assets/nested/vocab.txt").read_text() == "a\nb\n"
    assert read_manifest(target.parent / "store" / packed.name).name == "echo"


def test_tampered_member_is_named(packed: Path, tmp_path: Path) -> None:
    tamper(packed, "echo.py", b"import os\n")
    with pytest.raises(ArchiveError, match=r"hash mismatch for 'echo\.py'"):
        verify(packed)
    with pytest.raises(ArchiveError, match="hash mismatch"):
        unpack(packed, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def write_zip(path: Path, members: dict[str, bytes], manifest: Mapping[str, object]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST_PATH, orjson.dumps(manifest))
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def hostile(tmp_path: Path, name: str) -> Path:
    import hashlib

    manifest = {
        "name": "evil",
        "handler": "h.py",
        "files": {name: hashlib.sha256(b"x").hexdigest()},
    }
    return write_zip(tmp_path / "evil.podium", {name: b"x"}, manifest)


@pytest.mark.parametrize(
    ("member", "message"),
    [
        ("../escape.py", "'..'"),
        ("a/../../escape.py", "'..'"),
        ("/etc/passwd", "absolute path"),
        ("C:/windows.py", "absolute path"),
        ("a\\..\\b.py", "unsafe member name"),
    ],
)
def test_zip_slip_is_refused(tmp_path: Path, member: str, message: str) -> None:
    path = hostile(tmp_path, member)
    with pytest.raises(ArchiveError, match=message):
        unpack(path, tmp_path / "out")
    assert not (tmp_path / "escape.py").exists()
    assert not (tmp_path / "out").exists()


def test_symlink_member_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "link.podium"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST_PATH, orjson.dumps({"name": "l", "handler": "h.py", "files": {}}))
        info = zipfile.ZipInfo("h.py")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        unpack(path, tmp_path / "out")


def test_unlisted_member_is_refused(tmp_path: Path) -> None:
    path = write_zip(
        tmp_path / "x.podium", {"smuggled.py": b"x"}, {"name": "x", "handler": "sklearn"}
    )
    with pytest.raises(ArchiveError, match="not listed"):
        verify(path)


def test_truncated_zip(packed: Path) -> None:
    data = packed.read_bytes()
    packed.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="not a readable zip"):
        verify(packed)


def test_not_a_zip_and_missing_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.podium"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(ArchiveError, match=r"junk\.podium: not a readable zip"):
        read_manifest(junk)
    with pytest.raises(ArchiveError, match="no such file"):
        read_manifest(tmp_path / "missing.podium")


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"name": "../x", "handler": "h.py"}', "name"),
        (b'{"name": "x"}', "handler: Field required"),
        (b'{"name": "x", "handler": "h", "batch_size": "many"}', "batch_size"),
        (b'{"name": "x", "handler": "h", "surprise": 1}', "surprise"),
    ],
)
def test_invalid_manifest_is_named(tmp_path: Path, manifest: bytes, message: str) -> None:
    path = tmp_path / "m.podium"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(MANIFEST_PATH, manifest)
    with pytest.raises(ArchiveError, match=message):
        read_manifest(path)


def test_no_manifest(tmp_path: Path) -> None:
    path = tmp_path / "bare.podium"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.bin", b"x")
    with pytest.raises(ArchiveError, match=r"no \.podium/manifest\.json"):
        verify(path)


def test_oversized_member_is_refused(
    packed: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "MAX_MEMBER_BYTES", 10)
    with pytest.raises(ArchiveError, match="larger than the member limit"):
        unpack(packed, tmp_path / "out")


def test_member_larger_than_its_header_is_refused(tmp_path: Path) -> None:
    # A zip bomb lies about sizes; the stream is cut at the size the header claims.
    import hashlib

    payload = b"a" * 100_000
    manifest = {
        "name": "bomb",
        "handler": "h.py",
        "files": {"h.py": hashlib.sha256(payload).hexdigest()},
    }
    path = write_zip(tmp_path / "bomb.podium", {"h.py": payload}, manifest)
    data = bytearray(path.read_bytes())
    # Shrink the central directory's uncompressed size for h.py to 10 bytes.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=r"h\.py"):
        unpack(path, tmp_path / "out")


def test_pack_refuses_unsafe_names(tmp_path: Path) -> None:
    manifest = Manifest(name="x", handler="sklearn")
    with pytest.raises(ArchiveError):
        pack(manifest, {"../x.py": HANDLERS / "echo.py"}, tmp_path)
    with pytest.raises(ArchiveError, match="reserved"):
        pack(manifest, {MANIFEST_PATH: HANDLERS / "echo.py"}, tmp_path)


BOMB_ZEROS = 64 * 1024**2


def test_a_zip_bomb_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb-1.0.podium", BOMB_ZEROS)
    assert bomb.stat().st_size < BOMB_ZEROS / 500
    with pytest.raises(ArchiveError, match=r"bomb-1\.0\.podium: .*max_compression_ratio"):
        unpack(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArchiveError, match="max_compression_ratio"):
        verify(bomb)


def test_the_unpacked_size_limit(tmp_path: Path) -> None:
    folder = tmp_path / "assets"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(os.urandom(2 * 1024**2))
    manifest = Manifest(name="big", handler="echo.py")
    files = {"echo.py": HANDLERS / "echo.py", "weights.bin": folder / "weights.bin"}
    big = pack(manifest, files, tmp_path / "store")
    limits = archive.UnpackLimits(max_bytes=1024**2)
    with pytest.raises(ArchiveError, match=r"big-1\.0\.podium: .*max_unpacked_bytes"):
        unpack(big, tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArchiveError, match="max_unpacked_bytes"):
        verify(big, limits)
    assert unpack(big, tmp_path / "out").name == "big"  # the default limits let it through


def test_extract_counts_the_bytes_it_writes(tmp_path: Path) -> None:
    # No header check first: extract's own count stops the bomb.
    bomb = zip_bomb(tmp_path / "bomb-1.0.podium", BOMB_ZEROS)
    manifest = read_manifest(bomb)
    budget = native.UnpackBudget(archive.UnpackLimits(), bomb.stat().st_size, bomb.name)
    with zipfile.ZipFile(bomb) as zf, pytest.raises(ArchiveError, match="max_compression_ratio"):
        native.extract(zf, manifest, manifest.files, bomb.name, tmp_path / "out", budget)
    assert not (tmp_path / "out").exists()


def test_a_header_that_understates_a_member_writes_no_more_than_it_says(tmp_path: Path) -> None:
    bomb = zip_bomb(tmp_path / "bomb-1.0.podium", BOMB_ZEROS)
    lie_about_size(bomb, "zeros.bin", 1024)
    started = time.monotonic()
    with pytest.raises(ArchiveError, match=r"'zeros\.bin'"):
        unpack(bomb, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    with pytest.raises(ArchiveError, match=r"'zeros\.bin'"):
        verify(bomb)
    assert time.monotonic() - started < 5


def test_inspect_refuses_a_zip_bomb(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from podium.cli import main

    bomb = zip_bomb(tmp_path / "bomb-1.0.podium", BOMB_ZEROS)
    result = CliRunner().invoke(main, ["inspect", str(bomb)])
    assert result.exit_code == 1
    assert "max_compression_ratio" in result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bomb-1.0.podium"]


def test_serve_refuses_archives_over_the_limits_and_serves_the_rest(
    make_archive: MakeArchive, start_server: StartServer, tmp_path: Path
) -> None:
    make_archive("echo")
    store = tmp_path / "store"
    zip_bomb(store / "bomb-1.0.podium", BOMB_ZEROS)
    (tmp_path / "weights.bin").write_bytes(os.urandom(2 * 1024**2))
    files = {"echo.py": HANDLERS / "echo.py", "weights.bin": tmp_path / "weights.bin"}
    pack(Manifest(name="big", handler="echo.py:EchoHandler"), files, store)
    server = start_server("--max-unpacked-bytes", str(1024**2), "--work-dir", str(tmp_path / "w"))
    assert server.post("/predictions/echo", {"x": 1}).status_code == 200
    assert server.post("/predictions/bomb", {"x": 1}).status_code == 404
    assert server.post("/predictions/big", {"x": 1}).status_code == 404
    log = server.log.read_text()
    assert "bomb-1.0.podium" in log and "max_compression_ratio" in log
    assert "big-1.0.podium" in log and "max_unpacked_bytes" in log
    assert sorted(path.name for path in (tmp_path / "w").iterdir()) == ["echo-1.0"]


def test_the_default_limits_are_the_settings_defaults() -> None:
    from podium.settings import Settings

    fields = Settings.model_fields
    limits = archive.UnpackLimits(
        fields["max_unpacked_bytes"].default, fields["max_compression_ratio"].default
    )
    assert limits == archive.DEFAULT_LIMITS
