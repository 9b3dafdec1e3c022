"""Result downloads against a hostile host: addresses from the table (not ``ipaddress``' flags), the
connection pinned to the checked address (DNS rebinding, proxies, TLS kept on the host name), no
compressed body, the size cap on every network read and a deadline from the minimum rate.

Wire behaviour (dripped bytes, TLS, where a socket connects) is tested against a server on 127.0.0.1;
a fake clock stands in for time, so no assertion depends on how fast this machine is."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_provider_cogvideo.errors import CogVideoDownloadError, CogVideoDownloadTooLargeError
from airflow_provider_cogvideo.hooks import bodies, downloads
from airflow_provider_cogvideo.hooks.addresses import AddressPolicy, refused_kind
from airflow_provider_cogvideo.hooks.bodies import BodyLimits, BodyReader, BodyRefused
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

from ..local_server import LocalServer, RawBody, chunked, drip, gzip_bytes, head

PUBLIC = "93.184.216.34"
KiB = 1024
# What the fake resolver answers: a list is answered in turn, one entry per lookup (the last repeats).
DNS: dict[str, list[str]] = {
    "cdn.test": [PUBLIC],
    "localhost": ["127.0.0.1"],
    "rebind.test": [PUBLIC, "127.0.0.1"],
    "tls.test": ["127.0.0.1"],
}
BOTH = {"dual.test": ["2606:4700::1111", PUBLIC], "half-inside.test": [PUBLIC, "10.0.0.7"]}
"""Names answered with several addresses at once."""
_REAL_GETADDRINFO = socket.getaddrinfo


@pytest.fixture(autouse=True)
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fake DNS for the names above (IP literals resolve as usual); returns the names looked up."""
    asked: list[str] = []

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            return _REAL_GETADDRINFO(host, port, *args, **kwargs)
        if host in BOTH:
            asked.append(host)
            return [
                (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
                for a in BOTH[host]
            ]
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = DNS[host]
        address = answers[min(asked.count(host), len(answers) - 1)]
        asked.append(host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


class FakeClock:
    """Each reading is ``step`` seconds after the previous one: time that passes only when looked at."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def download(hook: CogVideoHook, url: str, **kwargs: Any) -> bytes:
    with hook.stream_download(url, **kwargs) as response:
        return b"".join(response.iter_bytes())


def refused(hook: CogVideoHook, url: str) -> str:
    with pytest.raises(CogVideoDownloadError) as exc:
        download(hook, url)
    assert not exc.value.retryable, "a refused target does not become acceptable by trying again"
    return str(exc.value)


# ------------------------------------------------------------------ the table of refused networks
@pytest.mark.parametrize(
    ("address", "kind", "note"),
    [
        ("0.1.2.3", "unspecified", ""),
        ("10.255.0.1", "private", ""),
        ("100.64.0.1", "carrier-grade NAT", ""),
        ("100.127.255.254", "carrier-grade NAT", ""),
        ("127.8.9.10", "loopback", ""),
        ("169.254.169.254", "link-local", ""),
        ("172.31.0.1", "private", ""),
        ("192.0.0.170", "reserved", ""),
        ("192.0.2.10", "documentation", ""),
        ("192.88.99.1", "reserved", ""),
        ("192.168.1.1", "private", ""),
        ("198.19.255.1", "benchmarking", ""),
        ("198.51.100.7", "documentation", ""),
        ("203.0.113.7", "documentation", ""),
        ("224.0.0.251", "multicast", ""),
        ("240.0.0.1", "reserved", ""),
        ("255.255.255.255", "broadcast", ""),
        ("::", "unspecified", ""),
        ("::1", "loopback", ""),
        ("::ffff:127.0.0.1", "loopback", "IPv4-mapped 127.0.0.1"),
        ("::ffff:a00:1", "private", "IPv4-mapped 10.0.0.1"),
        ("::7f00:1", "loopback", "IPv4-compatible 127.0.0.1"),
        ("64:ff9b::a9fe:a9fe", "link-local", "NAT64 169.254.169.254"),
        ("64:ff9b:1::a00:1", "private", ""),
        ("2002:7f00:1::", "loopback", "6to4 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "link-local", "6to4 169.254.169.254"),
        ("2002:6440:1::", "carrier-grade NAT", "6to4 100.64.0.1"),
        ("100::1", "reserved", ""),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "reserved", ""),
        ("2001:2::1", "benchmarking", ""),
        ("2001:db8::1", "documentation", ""),
        ("3fff::1", "documentation", ""),
        ("fd00::1", "private", ""),
        ("fe80::1", "link-local", ""),
        ("fec0::1", "private", ""),
        ("ff02::1", "multicast", ""),
        ("4000::1", "reserved", ""),
    ],
)
def test_refused_networks_come_from_the_table(address: str, kind: str, note: str) -> None:
    assert refused_kind(ipaddress.ip_address(address)) == (kind, note)


@pytest.mark.parametrize(
    "address",
    [PUBLIC, "1.1.1.1", "100.63.255.255", "100.128.0.1", "2606:4700::1111", "::ffff:93.184.216.34",
     "64:ff9b::5db8:d822", "2002:5db8:d822::1"],
)  # fmt: skip
def test_public_addresses_and_ipv6_forms_of_them_pass(address: str) -> None:
    assert refused_kind(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://100.64.0.1/v.mp4", "is a carrier-grade NAT address (100.64.0.1)"),
        ("http://[2002:7f00:1::]/v.mp4", "is a loopback address (2002:7f00:1::, 6to4 127.0.0.1)"),
        ("http://[64:ff9b::a9fe:a9fe]/v.mp4", "is a link-local address (64:ff9b::a9fe:a9fe, NAT64 169.254.169.254)"),
        ("http://[::7f00:1]/v.mp4", "is a loopback address (::7f00:1, IPv4-compatible 127.0.0.1)"),
        ("http://198.18.0.1/v.mp4", "is a benchmarking address"),
        ("http://255.255.255.255/v.mp4", "is a broadcast address"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/v.mp4", "is a reserved address"),
        ("http://[4000::1]/v.mp4", "is a reserved address"),
    ],
)
def test_the_hook_refuses_what_the_table_refuses_before_sending(hook_for, url: str, says: str) -> None:
    hook = hook_for()
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(url__regex=r".*").mock(return_value=httpx.Response(200, content=b"x"))
        assert says in refused(hook, url)
        assert not route.called


def test_an_emulator_api_opens_exactly_its_own_address_and_port(hook_for) -> None:
    hook = hook_for(base_url="http://127.0.0.1:8765/api/paas/v4")
    with respx.mock(assert_all_called=False) as mock:
        mock.get(url__regex=r".*").mock(return_value=httpx.Response(200, content=b"mp4"))
        assert download(hook, "http://127.0.0.1:8765/files/v.mp4") == b"mp4"
        assert download(hook, "http://localhost:8765/files/v.mp4") == b"mp4"
        for other in ("http://127.0.0.1:9999/admin", "http://127.0.0.2:8765/files/v.mp4", "http://[::1]:8765/"):
            assert "is a loopback address" in refused(hook, other), other


def test_policy_of_a_public_api_allows_no_loopback_address() -> None:
    assert AddressPolicy.for_api("https://open.bigmodel.cn/api/paas/v4").allowed == frozenset()
    assert AddressPolicy.for_api("http://localhost:8765/api/paas/v4").allowed == {
        (ipaddress.ip_address("127.0.0.1"), 8765)
    }


# ------------------------------------------------------------------ the connection goes where checked
@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every TCP connection httpcore opens, refused after being recorded (nothing leaves the machine)."""
    seen: list[tuple[str, int]] = []

    def create_connection(address: tuple[str, int], *args: Any, **kwargs: Any) -> socket.socket:
        seen.append((address[0], address[1]))
        raise ConnectionRefusedError("recorded by the test")

    monkeypatch.setattr(socket, "create_connection", create_connection)
    return seen


def test_dns_rebinding_cannot_move_the_connection(hook_for, connects, lookups) -> None:
    """The name resolves to a public address for the check and to 127.0.0.1 afterwards: the socket is
    opened to the address that was checked, and the name is looked up once."""
    hook = hook_for()
    with pytest.raises(CogVideoDownloadError, match="ConnectError") as exc:
        download(hook, "http://rebind.test/v.mp4?X-Amz-Signature=s3cr3t")
    assert connects == [(PUBLIC, 80)]
    assert lookups == ["rebind.test"]
    assert exc.value.retryable and "s3cr3t" not in str(exc.value)


def test_every_checked_address_is_tried_in_turn_and_only_those(hook_for, connects, lookups) -> None:
    """A dual-stack name: the IPv6 address first, then the IPv4 one (a worker without IPv6 still
    connects), both checked, and the name looked up once."""
    hook = hook_for()
    with pytest.raises(CogVideoDownloadError, match="ConnectError"):
        download(hook, "https://dual.test/v.mp4")
    assert connects == [("2606:4700::1111", 443), (PUBLIC, 443)]
    assert lookups == ["dual.test"]
    assert "is a private address (10.0.0.7)" in refused(hook, "https://half-inside.test/v.mp4")
    assert connects == [("2606:4700::1111", 443), (PUBLIC, 443)], "nothing sent when one address is inside"


def test_environment_proxies_are_not_used(hook_for, connects, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy would resolve the name itself, out of reach of the check: downloads do not use one."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://proxy.test:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    hook = hook_for()
    with pytest.raises(CogVideoDownloadError, match="ConnectError"):
        download(hook, "https://cdn.test/v.mp4")
    assert connects == [(PUBLIC, 443)]


def _certificates(tmp_path: Path, hostname: str) -> tuple[str, str, str]:
    """A CA and a server certificate for ``hostname`` signed by it: (ca.pem, cert.pem, key.pem)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
        .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    cert = (
        x509.CertificateBuilder().subject_name(name(hostname)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(2).not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tuple(str(p) for p in paths)  # type: ignore[return-value]


@pytest.mark.parametrize(("certified", "works"), [("tls.test", True), ("other.test", False)])
def test_a_pinned_connection_keeps_the_host_name_for_sni_host_and_certificate(
    tmp_path: Path, certified: str, works: bool
) -> None:
    """Connected to the pinned 127.0.0.1, TLS still names ``tls.test`` (SNI), verifies the certificate
    against ``tls.test`` (one for another name is refused) and the request says ``Host: tls.test``."""
    ca, cert, key = _certificates(tmp_path, certified)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    client_tls = ssl.create_default_context(cafile=ca)
    body = b"pinned and verified"
    respond = lambda method, path: [head(headers={"Content-Length": str(len(body))}), body]  # noqa: E731
    with LocalServer(respond, tls=server_tls) as server:
        url = f"https://tls.test:{server.port}/v.mp4?sig=s3cr3t"
        policy = AddressPolicy(frozenset({(ipaddress.ip_address("127.0.0.1"), server.port)}))
        limits = BodyLimits(1024, grace=5, min_rate=1024)
        opened = downloads.open_download(
            url, policy=policy, limits=limits, timeout=httpx.Timeout(5.0), headers={}, verify=client_tls
        )
        if not works:
            with pytest.raises(CogVideoDownloadError, match="ConnectError") as exc, opened:
                pass
            assert exc.value.retryable and "s3cr3t" not in str(exc.value)
            return
        with opened as response:
            assert b"".join(response.iter_bytes()) == body
    assert server.seen[0].sni == "tls.test"
    assert server.seen[0].headers["host"] == f"tls.test:{server.port}"


# ------------------------------------------------------------------ what the body may be
@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip", "deflate", "br", "x-gzip"])
def test_a_compressed_download_is_refused_naming_the_encoding(hook_for, encoding: str) -> None:
    """Downloads ask for identity; httpx would still inflate a gzip body, by a whole network read at a
    time, before any cap counts it. Refused when the headers arrive, without retry."""
    hook = hook_for()
    bomb = gzip_bytes(32 * 1024 * 1024, layers=encoding.count("gzip") or 1)
    with respx.mock() as mock:
        mock.get("https://cdn.test/v.mp4").mock(
            return_value=httpx.Response(200, stream=RawBody(bomb), headers={"Content-Encoding": encoding})
        )
        shown = refused(hook, "https://cdn.test/v.mp4?X-Amz-Signature=s3cr3t")
    assert f"Content-Encoding {encoding!r}, which was not asked for" in shown
    assert "s3cr3t" not in shown


def test_identity_encoding_is_what_downloads_ask_for_and_accept(hook_for) -> None:
    hook = hook_for()
    with respx.mock() as mock:
        route = mock.get("https://cdn.test/v.mp4").mock(
            return_value=httpx.Response(200, content=b"mp4", headers={"Content-Encoding": "identity"})
        )
        assert download(hook, "https://cdn.test/v.mp4") == b"mp4"
    assert route.calls[0].request.headers["accept-encoding"] == "identity"


def test_a_chunked_body_stops_on_the_read_that_passes_the_cap(hook_for) -> None:
    """No Content-Length: the count of every network read decides. What was let through is within the
    cap, and what was read is at most one read past it."""
    cap = 256 * KiB
    pieces = [bytes([n % 251]) * (16 * KiB) for n in range(128)]  # 2 MiB, chunked
    with LocalServer(lambda method, path: [head(headers={"Transfer-Encoding": "chunked"}), *chunked(pieces)]) as server:
        hook = hook_for(base_url=f"http://127.0.0.1:{server.port}/api/paas/v4")
        let_through: list[int] = []

        def read() -> None:
            with hook.stream_download(f"http://127.0.0.1:{server.port}/files/v.mp4", max_bytes=cap) as response:
                let_through.extend(len(chunk) for chunk in response.iter_bytes())

        with pytest.raises(CogVideoDownloadTooLargeError) as exc:
            read()
    assert not exc.value.retryable and exc.value.max_bytes == cap
    assert sum(let_through) <= cap < exc.value.received <= cap + 64 * KiB + 1024
    assert f"over its cap of {cap} bytes" in str(exc.value)


# ------------------------------------------------------------------ how fast it must come
def test_a_dripping_download_is_cut_off_by_the_deadline_checked_on_every_read(hook_for, monkeypatch) -> None:
    """One byte at a time: each read is quick (request_timeout is a per-read timeout and never fires),
    the download as a whole is too slow. The fake clock moves 1 s per reading; with a grace of 1 s and
    a minimum of 1024 bytes/s the deadline passes on the second read, long before the body ends."""
    body = b"v" * 400
    clock = FakeClock(step=1.0)
    monkeypatch.setattr(bodies, "_monotonic", clock)

    def respond(method: str, path: str) -> Iterator[bytes]:
        yield head(headers={"Content-Length": str(len(body))})
        yield from drip(body, 0.002)

    with LocalServer(respond) as server:
        hook = hook_for(
            base_url=f"http://127.0.0.1:{server.port}/api/paas/v4", request_timeout=1, min_transfer_rate=1024
        )
        url = f"http://127.0.0.1:{server.port}/files/v.mp4?X-Amz-Signature=s3cr3t"
        with pytest.raises(CogVideoDownloadError) as exc:
            download(hook, url)
    message = str(exc.value)
    assert not exc.value.retryable
    assert f"download of http://127.0.0.1:{server.port}/files/v.mp4?<redacted> is too slow" in message
    assert "1024 bytes/s after a grace of 1 s" in message and "s3cr3t" not in message
    received, elapsed = re.search(r"(\d+) bytes in ([\d.]+) s", message).groups()  # type: ignore[union-attr]
    assert int(received) < 50, "checked after each network read, not after a large aggregated chunk"
    assert float(elapsed) > 1 + int(received) / 1024


def test_the_deadline_is_grace_plus_bytes_over_the_minimum_rate() -> None:
    limits = BodyLimits(max_bytes=10 * KiB, grace=2.0, min_rate=1 * KiB)
    clock = FakeClock(step=0.0)

    def reader(received: int, at: float) -> None:
        clock.now = 1000.0
        body = BodyReader(limits, clock=clock)
        clock.now = 1000.0 + at
        list(body.take(bytes(received)))

    reader(0, 2.0)  # within the grace, nothing needs to have arrived
    reader(4 * KiB, 6.0)  # 2 s + 4 KiB at 1 KiB/s
    with pytest.raises(BodyRefused, match=r"too slow: 0 bytes in 2\.5 s"):
        reader(0, 2.5)
    with pytest.raises(BodyRefused, match="too slow"):
        reader(4 * KiB, 6.1)
    assert limits.allowed_seconds(10 * KiB) == limits.allowed_seconds(10**9) == 12.0  # at most grace + cap/rate


def test_a_download_within_its_limits_reads_through(hook_for) -> None:
    body = bytes(range(256)) * 512
    respond = lambda method, path: [head(headers={"Content-Length": str(len(body))}), body]  # noqa: E731
    with LocalServer(respond) as server:
        hook = hook_for(base_url=f"http://127.0.0.1:{server.port}/api/paas/v4")
        with hook.stream_download(f"http://127.0.0.1:{server.port}/files/v.mp4", max_bytes=len(body)) as response:
            assert b"".join(response.iter_bytes(1000)) == body
            assert response.headers["content-length"] == str(len(body))
    assert server.seen[0].headers["accept-encoding"] == "identity"
    assert "authorization" not in server.seen[0].headers
