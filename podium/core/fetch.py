"""Registration from a URL, for operators who allow it: allow-list first, then fetch.

Nothing is fetched unless the normalised URL starts with an entry of ``allowed_urls``
(empty by default, so URL registration is off). Normalising decodes the percent-encoding
of unreserved characters (``%2e`` is ``.``) before ``.`` and ``..`` are resolved, and
refuses what servers read in different ways (encoded slashes, backslashes, NUL, double
encoding, ``..;``); the URL fetched is the normalised one. Only http(s); hosts that resolve
to link-local, cloud-metadata, multicast or unspecified addresses are refused; redirects
are not followed; the download is capped in size and in time and lands in the model store
under the URL's file name, which must be a ``.podium`` or ``.mar`` archive. A download or
registration that fails leaves nothing in the store.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import posixpath
import re
import secrets
import string
from collections.abc import Awaitable
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from podium.errors import Forbidden, InvalidRequest, RequestTimeout

ARCHIVE_SUFFIXES = (".podium", ".mar")
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}
UNRESERVED = frozenset(string.ascii_letters + string.digits + "-._~")
PATH_CHARACTERS = "/:@!$&'()*+,;="
"""What a path may hold unencoded (RFC 3986), besides unreserved characters."""
REFUSED_ENCODINGS = {
    "2F": "an encoded slash",
    "5C": "a backslash",
    "00": "a NUL byte",
    "25": "double encoding",
}
PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")
DOWNLOAD_TIMEOUT = 300.0
T = TypeVar("T")


def normalise(url: str) -> str:
    """Lower-case scheme and host, normalise the path, drop user info and fragment.

    >>> normalise("HTTP://Host/releases/%2e%2e/private/x.podium")
    'http://host/private/x.podium'
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Forbidden("Only http and https URLs with a host can be registered")
    try:
        port = parts.port
    except ValueError:
        raise Forbidden("The URL's port is not valid") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host + (f":{port}" if port else "")
    return urlunsplit((scheme, netloc, normalise_path(parts.path), parts.query, ""))


def normalise_path(path: str) -> str:
    """Percent-decode unreserved characters, encode what must be, resolve ``.`` and ``..``;
    refuse (``Forbidden``) what origins would read as a different path than this check."""
    encoded = quote(path, safe=PATH_CHARACTERS + "%")
    if "%" in PERCENT.sub("", encoded):
        raise Forbidden("The URL path has a malformed percent-encoding")
    decoded = PERCENT.sub(_decode_unreserved, encoded)
    segments = decoded.split("/")
    if any(segment.partition(";")[0] in (".", "..") and ";" in segment for segment in segments):
        raise Forbidden("The URL path has a dot segment with parameters (..;)")
    resolved = posixpath.normpath(decoded or "/")
    if segments[-1] in ("", ".", "..") and not resolved.endswith("/"):
        resolved += "/"  # "releases/" allows what is inside the folder, not "releases-x"
    return resolved


def _decode_unreserved(match: re.Match[str]) -> str:
    octet = match.group(1).upper()
    if octet in REFUSED_ENCODINGS:
        raise Forbidden(f"The URL path holds {REFUSED_ENCODINGS[octet]} (%{octet})")
    character = chr(int(octet, 16))
    return character if character in UNRESERVED else f"%{octet}"


def check_allowed(url: str, allowed: list[str]) -> str:
    """The normalised URL, if an allow-list entry covers it; else ``Forbidden``."""
    normal = normalise(url)
    if not any(normal.startswith(normalise(prefix)) for prefix in allowed):
        raise Forbidden("The URL is not in the registration allow-list")
    return normal


async def check_host(url: str) -> None:
    """Refuse hosts that resolve to link-local or metadata addresses (SSRF)."""
    host = urlsplit(url).hostname or ""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError:
        raise InvalidRequest(f"Cannot resolve {host}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address in METADATA_ADDRESSES
            or address.is_link_local
            or address.is_multicast
            or address.is_unspecified
        ):
            raise Forbidden(f"{host} resolves to a refused address")


async def download(
    url: str,
    allowed: list[str],
    store: Path,
    max_bytes: int,
    timeout: float = DOWNLOAD_TIMEOUT,
) -> Path:
    """Fetch an allowed archive URL into ``store``; return the file's path.

    The whole download, name resolution included, must end within ``timeout`` seconds,
    else ``RequestTimeout`` (504). On any failure nothing is left in ``store``.
    """
    normal = check_allowed(url, allowed)
    name = unquote(posixpath.basename(urlsplit(normal).path))
    if not name.endswith(ARCHIVE_SUFFIXES) or name.startswith("."):
        raise InvalidRequest("The URL must name a .podium or .mar file")
    target = store / name
    if target.exists():
        raise InvalidRequest(f"{name} is already in the model store")
    partial = store / f".{name}.{secrets.token_hex(8)}.partial"
    try:
        async with asyncio.timeout(timeout):
            await check_host(normal)
            await _fetch(normal, partial, max_bytes)
        _publish(partial, target)
    except TimeoutError:
        raise RequestTimeout(
            f"Downloading the archive took longer than download_timeout ({timeout:g} s)"
        ) from None
    except httpx.TimeoutException as error:
        raise RequestTimeout(f"Fetching the archive timed out ({type(error).__name__})") from None
    except httpx.HTTPError as error:
        raise InvalidRequest(f"Cannot fetch the archive: {type(error).__name__}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target


async def _fetch(url: str, partial: Path, max_bytes: int) -> None:
    size = 0
    async with (
        httpx.AsyncClient(follow_redirects=False, timeout=60) as client,
        client.stream("GET", url) as response,
    ):
        if response.is_redirect:
            raise Forbidden("The URL redirects; redirects are not followed")
        if response.status_code != 200:
            raise InvalidRequest(f"Fetching the archive answered {response.status_code}")
        with partial.open("xb") as sink:
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise InvalidRequest(f"The archive is larger than {max_bytes} bytes")
                sink.write(chunk)


def _publish(partial: Path, target: Path) -> None:
    """Give the downloaded file its name, unless another download took that name first
    (that file is someone else's, so a failure here must not remove it)."""
    try:
        os.link(partial, target)
    except FileExistsError:
        raise InvalidRequest(f"{target.name} is already in the model store") from None
    except OSError:
        # A file system without hard links: check, then rename (a narrow race).
        if target.exists():
            raise InvalidRequest(f"{target.name} is already in the model store") from None
        partial.rename(target)


async def discard_on_failure(archive: Path, registration: Awaitable[T]) -> T:
    """Await the ``registration`` of a downloaded ``archive``; if it fails, delete the
    archive, so that a refused archive never stays in the model store."""
    try:
        return await registration
    except BaseException:
        archive.unlink(missing_ok=True)
        raise
