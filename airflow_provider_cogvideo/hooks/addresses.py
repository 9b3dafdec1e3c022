"""Where a result download may go: an explicit table of refused networks, and the check every hop of
a download passes before anything is sent to it.

The result URL comes from an API answer, so it may point anywhere. Only http(s) is fetched, and every
hop's host is resolved and checked against :data:`REFUSED_V4` and :data:`REFUSED_V6`; IPv6 forms that
embed an IPv4 address, such as 6to4, NAT64 or IPv4-mapped, are judged by the embedded address
(:data:`EMBEDDED_V4`). The table is written out here rather than read from ``ipaddress``'
``is_private``/``is_global``, whose answers changed between Python 3.10 and 3.13. Every address the
name resolves to must pass, and :mod:`.downloads` connects only to the addresses checked.

With a local emulator as the API (a loopback base URL, :func:`is_loopback_host`), downloads may reach
exactly the API's own address and port, nothing else on loopback.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_provider_cogvideo.errors import CogVideoDownloadError
from airflow_provider_cogvideo.redact import HTTP_SCHEMES, redact_url, shorten

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_DEFAULT_PORTS = {"http": 80, "https": 443}

REFUSED_V4: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), kind)
    for net, kind in (
        ("0.0.0.0/8", "unspecified"),  # "this network"; 0.0.0.0 itself
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),  # shared address space, inside a provider's network
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),  # cloud metadata services live here
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "reserved"),  # the deprecated 6to4 relay anycast
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)
"""IPv4 networks a download may not reach, first match wins; every other IPv4 address is public."""

REFUSED_V6: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), kind)
    for net, kind in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "private"),  # local-use NAT64 (RFC 8215): translates into a local network
        ("100::/64", "reserved"),  # discard-only
        ("2001::/32", "reserved"),  # Teredo: a tunnel to an IPv4 address hidden in the address
        ("2001:2::/48", "benchmarking"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "private"),  # unique local
        ("fe80::/10", "link-local"),
        ("fec0::/10", "private"),  # site-local (deprecated)
        ("ff00::/8", "multicast"),
    )
)
"""IPv6 networks a download may not reach (checked before the embedded forms below)."""


def _low32(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)


def _6to4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)


EMBEDDED_V4: tuple[tuple[ipaddress.IPv6Network, str, Callable[[ipaddress.IPv6Address], ipaddress.IPv4Address]], ...]
EMBEDDED_V4 = (
    (ipaddress.IPv6Network("::ffff:0:0/96"), "IPv4-mapped", _low32),
    (ipaddress.IPv6Network("::/96"), "IPv4-compatible", _low32),
    (ipaddress.IPv6Network("64:ff9b::/96"), "NAT64", _low32),
    (ipaddress.IPv6Network("2002::/16"), "6to4", _6to4),
)
"""IPv6 forms that carry an IPv4 address: judged by :data:`REFUSED_V4` on the embedded address."""

GLOBAL_UNICAST_V6 = ipaddress.IPv6Network("2000::/3")
"""Outside it (and the forms above) an IPv6 address is unassigned or special: refused as reserved."""


def refused_kind(address: IPAddress) -> tuple[str, str] | None:
    """Why ``address`` is no place for a download: ``(kind, note)`` (``note`` names an embedded IPv4
    address), or None for a public address. Decided by the tables above only."""
    if isinstance(address, ipaddress.IPv4Address):
        for network, kind in REFUSED_V4:
            if address in network:
                return kind, ""
        return None
    for network, kind in REFUSED_V6:
        if address in network:
            return kind, ""
    for network, form, embedded in EMBEDDED_V4:
        if address in network:
            inner = embedded(address)
            found = refused_kind(inner)
            return (found[0], f"{form} {inner}") if found else None
    if address not in GLOBAL_UNICAST_V6:
        return "reserved", ""
    return None


def _plain(address: IPAddress) -> IPAddress:
    """An IPv4-mapped IPv6 address as the IPv4 address it is (how a dual-stack socket reaches it)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def resolve(hostname: str, shown: str) -> list[IPAddress]:
    """The addresses a host name stands for: itself if literal, else what the resolver says."""
    try:
        return [ipaddress.ip_address(hostname)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(hostname, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise CogVideoDownloadError(f"download of {shown}: cannot resolve {hostname}", retryable=True) from exc
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
    if not addresses:
        raise CogVideoDownloadError(f"download of {shown}: cannot resolve {hostname}", retryable=True)
    return addresses


@dataclass(frozen=True)
class Target:
    """A checked hop: the host as the transport will name it, its port, and the addresses (all
    checked) to connect to, in the resolver's order."""

    host: str
    port: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class AddressPolicy:
    """Where downloads may go: public addresses, plus ``allowed`` (address, port) pairs: the API's own
    when it runs on loopback (the local emulator hands out its own URLs)."""

    allowed: frozenset[tuple[IPAddress, int]] = frozenset()

    @classmethod
    def for_api(cls, base_url: str) -> AddressPolicy:
        """The policy of a connection: with a loopback API, exactly its address(es) and port."""
        parts = urlsplit(base_url)
        hostname = parts.hostname or ""
        if not is_loopback_host(hostname):
            return cls()
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 80)
        try:
            addresses = resolve(hostname, redact_url(base_url))
        except CogVideoDownloadError:
            return cls()
        return cls(frozenset((_plain(address), port) for address in addresses if _kind(address) == "loopback"))

    def check(self, url: str) -> Target:
        """``url``'s host, resolved and checked; a refusal is a non-retryable :class:`CogVideoDownloadError`
        that names the host and address (never the query string: it holds signatures)."""
        import httpx

        shown = redact_url(url)
        try:
            parts = urlsplit(url)
            port = parts.port
            raw_host = httpx.URL(url).raw_host.decode("ascii")
        except (ValueError, httpx.InvalidURL, UnicodeError):
            raw_host, parts, port = "", None, None
        if parts is None or parts.scheme not in HTTP_SCHEMES or not parts.hostname or not raw_host:
            raise CogVideoDownloadError(f"download refused: not an http(s) URL: {shorten(shown, 200)}")
        port = port or _DEFAULT_PORTS[parts.scheme]
        addresses = resolve(raw_host, shown)
        for address in addresses:
            if (_plain(address), port) in self.allowed:
                continue
            found = refused_kind(address)
            if found:
                kind, note = found
                detail = f"{address}, {note}" if note else str(address)
                raise CogVideoDownloadError(
                    f"download of {shown} refused: {parts.hostname} is a {kind} address ({detail})"
                )
        return Target(host=raw_host.lower(), port=port, addresses=tuple(str(_plain(a)) for a in addresses))


def _kind(address: IPAddress) -> str | None:
    found = refused_kind(address)
    return found[0] if found else None


def is_loopback_host(hostname: str) -> bool:
    """Whether a URL's host is this machine: ``localhost``, or an address the table above calls
    loopback (IPv6 forms of ``127.0.0.1`` included). A loopback API is a local emulator: the base-URL
    rule defaults it to ``http``, and downloads may reach its own address and port."""
    if hostname.lower() == "localhost":
        return True
    try:
        return _kind(ipaddress.ip_address(hostname.strip("[]"))) == "loopback"
    except ValueError:
        return False


__all__ = [
    "EMBEDDED_V4",
    "REFUSED_V4",
    "REFUSED_V6",
    "AddressPolicy",
    "Target",
    "is_loopback_host",
    "refused_kind",
    "resolve",
]
