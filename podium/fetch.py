"""Registration from a URL, for operators who allow it: allow-list first, then fetch.

Nothing is fetched unless the normalised URL starts with an entry of ``allowed_urls``
(empty by default, so URL registration is off). Only http(s); hosts that resolve to
link-local, cloud-metadata, multicast or unspecified addresses are refused; redirects are
not followed; the download is capped and lands in the model store under the URL's file
name, which must be a ``.podium`` or ``.mar`` archive.
"""

from __future__ import annotations

import asyncio
import ipaddress
import posixpath
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from podium.errors import Forbidden, InvalidRequest

ARCHIVE_SUFFIXES = (".podium", ".mar")
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
}


def normalise(url: str) -> str:
    """Lower-case scheme and host, resolve ``.`` and ``..`` in the path, drop fragments."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise Forbidden("Only http and https URLs with a host can be registered")
    path = posixpath.normpath(parts.path or "/")
    path = path if path != "." else "/"
    netloc = parts.hostname.lower() + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme.lower(), netloc, path, parts.query, ""))


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


async def download(url: str, allowed: list[str], store: Path, max_bytes: int) -> Path:
    """Fetch an allowed archive URL into ``store``; return the file's path."""
    normal = check_allowed(url, allowed)
    name = posixpath.basename(urlsplit(normal).path)
    if not name.endswith(ARCHIVE_SUFFIXES) or name.startswith("."):
        raise InvalidRequest("The URL must name a .podium or .mar file")
    await check_host(normal)
    target = store / name
    if target.exists():
        raise InvalidRequest(f"{name} is already in the model store")
    partial = store / f".{name}.partial"
    size = 0
    try:
        async with (
            httpx.AsyncClient(follow_redirects=False, timeout=60) as client,
            client.stream("GET", normal) as response,
        ):
            if response.is_redirect:
                raise Forbidden("The URL redirects; redirects are not followed")
            if response.status_code != 200:
                raise InvalidRequest(f"Fetching the archive answered {response.status_code}")
            with partial.open("wb") as sink:
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise InvalidRequest(f"The archive is larger than {max_bytes} bytes")
                    sink.write(chunk)
        partial.rename(target)
    except httpx.HTTPError as error:
        raise InvalidRequest(f"Cannot fetch the archive: {type(error).__name__}") from None
    finally:
        partial.unlink(missing_ok=True)
    return target
