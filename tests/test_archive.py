"""Archives: round trip, and every way a hostile or broken archive is refused."""

from __future__ import annotations

import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest

from podium import archive
from podium.archive import MANIFEST_PATH, Manifest, pack, read_manifest, unpack, verify
from podium.errors import ArchiveError
from tests.conftest import HANDLERS, tamper


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
    monkeypatch.setattr(archive, "MAX_MEMBER_BYTES", 10)
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
