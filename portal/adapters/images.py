"""Fetching the shop's product pictures over HTTP, carefully: http(s) only, public addresses only
(unless allowed for a shop on the same network), a size cap and a timeout. The portal keeps its
own copy; shoppers' browsers never load the shop's address."""

from __future__ import annotations

import ipaddress
import socket
import urllib.request
from typing import Protocol
from urllib.parse import urlsplit


class ImageFetchError(Exception):
    """The picture could not be fetched; the message says why."""


class ImageFetcher(Protocol):
    def fetch(self, url: str) -> bytes: ...


class HttpImageFetcher:
    def __init__(self, max_bytes: int = 5 * 1024 * 1024, timeout: float = 10.0, allow_private: bool = False):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_private = allow_private

    def _check_host(self, host: str) -> None:
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        except socket.gaierror as exc:
            raise ImageFetchError(f"unknown host {host}") from exc
        for address in addresses:
            ip = ipaddress.ip_address(str(address).split("%")[0])
            if not self.allow_private and (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved):
                raise ImageFetchError(f"{host} is not a public address")

    def fetch(self, url: str) -> bytes:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageFetchError("not an http(s) address")
        self._check_host(parts.hostname)
        request = urllib.request.Request(url, headers={"User-Agent": "returns-portal"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 (scheme checked)
                data = response.read(self.max_bytes + 1)
        except OSError as exc:
            raise ImageFetchError(f"could not fetch: {exc}") from exc
        if len(data) > self.max_bytes:
            raise ImageFetchError("larger than the limit")
        return data


def fetcher_from_config(config) -> ImageFetcher:
    return HttpImageFetcher(allow_private=bool(config.get("PRODUCT_IMAGES_ALLOW_PRIVATE")))
