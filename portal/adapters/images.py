"""Fetching the shop's product pictures over HTTP, carefully: http(s) only, public addresses only
(unless allowed for a shop on the same network), a size cap and a timeout. The portal keeps its
own copy; shoppers' browsers never load the shop's address.

Each host name is resolved once, every address it has is checked, and the connection goes to a
checked address: a name cannot answer a public address for the check and a private one for the
fetch. Redirects (at most three, shops often send pictures on to a CDN) are checked the same way."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from typing import Any, Protocol
from urllib.parse import SplitResult, urljoin, urlsplit, urlunsplit

MAX_REDIRECTS = 3
REDIRECT_STATUSES = {301, 302, 303, 307, 308}

Address = tuple[socket.AddressFamily, Any]  # a socket family and a socket address in it


class ImageFetchError(Exception):
    """The picture could not be fetched; the message says why."""


class ImageFetcher(Protocol):
    def fetch(self, url: str) -> bytes: ...


def is_public(address: str) -> bool:
    """Whether an address is on the public internet. An IPv4 address written as IPv6
    (::ffff:127.0.0.1) is judged as the IPv4 address it reaches."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified
    )


class PinnedConnection(http.client.HTTPConnection):
    """HTTP to addresses that were already checked, never to a new lookup of the name; the Host
    header still names the host."""

    def __init__(self, host: str, port: int, addresses: list[Address], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.addresses = addresses

    def connect(self) -> None:
        failure = OSError("no address to connect to")
        for family, address in self.addresses:
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            try:
                sock.connect(address)
            except OSError as exc:
                sock.close()
                failure = exc
            else:
                self.sock = sock
                return
        raise failure


class PinnedTLSConnection(PinnedConnection):
    """The same over TLS: the handshake names the host (SNI) and the certificate must be the host's."""

    default_port = http.client.HTTPS_PORT

    def connect(self) -> None:
        super().connect()
        self.sock = ssl.create_default_context().wrap_socket(self.sock, server_hostname=self.host)


class HttpImageFetcher:
    def __init__(self, max_bytes: int = 5 * 1024 * 1024, timeout: float = 10.0, allow_private: bool = False):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.allow_private = allow_private

    def addresses(self, host: str, port: int) -> list[Address]:
        """Resolves the host once and checks every address it has; only these are connected to."""
        try:
            found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise ImageFetchError(f"unknown host {host}") from exc
        addresses: list[Address] = [(family, address) for family, _, _, _, address in found]
        if not self.allow_private and not all(is_public(str(address[0])) for _, address in addresses):
            raise ImageFetchError(f"{host} is not a public address")
        return addresses

    def connection(self, parts: SplitResult) -> PinnedConnection:
        """A connection for one address (the first, or one a redirect named), checked and pinned."""
        try:
            port = parts.port
        except ValueError as exc:
            raise ImageFetchError("not an http(s) address") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ImageFetchError("not an http(s) address")
        kind = PinnedTLSConnection if parts.scheme == "https" else PinnedConnection
        port = port or kind.default_port
        return kind(parts.hostname, port, self.addresses(parts.hostname, port), self.timeout)

    def fetch(self, url: str) -> bytes:
        for _hop in range(MAX_REDIRECTS + 1):
            parts = urlsplit(url)
            connection = self.connection(parts)
            try:
                connection.request(
                    "GET",
                    urlunsplit(("", "", parts.path or "/", parts.query, "")),
                    headers={"User-Agent": "returns-portal", "Connection": "close"},
                )
                response = connection.getresponse()
                if response.status in REDIRECT_STATUSES and (location := response.getheader("Location")):
                    url = urljoin(url, location)
                    continue
                if not 200 <= response.status < 300:
                    raise ImageFetchError(f"could not fetch: HTTP Error {response.status}: {response.reason}")
                data = response.read(self.max_bytes + 1)
            except (OSError, http.client.HTTPException, UnicodeError) as exc:
                raise ImageFetchError(f"could not fetch: {exc}") from exc
            finally:
                connection.close()
            if len(data) > self.max_bytes:
                raise ImageFetchError("larger than the limit")
            return data
        raise ImageFetchError("too many redirects")


def fetcher_from_config(config) -> ImageFetcher:
    return HttpImageFetcher(allow_private=bool(config.get("PRODUCT_IMAGES_ALLOW_PRIVATE")))
