"""stream_download goes only where it should: http(s), public addresses, checked at every redirect hop."""

from __future__ import annotations

import socket

import httpx
import pytest
import respx

from airflow_provider_cogvideo.errors import CogVideoDownloadError
from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook
from airflow_provider_cogvideo.hooks.downloads import MAX_DOWNLOAD_REDIRECTS

PUBLIC = "93.184.216.34"
# What the fake resolver answers; names not listed do not resolve.
DNS = {
    "cdn.test": PUBLIC,
    "other-cdn.test": PUBLIC,
    "metadata.test": "169.254.169.254",
    "intranet.test": "10.1.2.3",
    "rebind.test": "127.0.0.1",
    "localhost": "127.0.0.1",
    "ula.test": "fd00::1",
}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    def getaddrinfo(host, port, *args, **kwargs):
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        family = socket.AF_INET6 if ":" in DNS[host] else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (DNS[host], port or 0))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def emulator_hook(make_conn) -> CogVideoHook:
    make_conn(extra={"base_url": "http://127.0.0.1:8765/api/paas/v4"})
    return CogVideoHook()


def redirect(location: str, status: int = 302) -> httpx.Response:
    return httpx.Response(status, headers={"Location": location})


def download(hook: CogVideoHook, url: str) -> bytes:
    with hook.stream_download(url) as response:
        return b"".join(response.iter_bytes())


def refused(hook: CogVideoHook, url: str) -> CogVideoDownloadError:
    with pytest.raises(CogVideoDownloadError) as exc:
        download(hook, url)
    assert not exc.value.retryable, "a refused target does not become acceptable by trying again"
    return exc.value


def test_download_streams_without_sending_the_key(hook) -> None:
    with respx.mock() as mock:
        route = mock.get("https://cdn.test/v.mp4").mock(return_value=httpx.Response(200, content=b"x" * 1000))
        with hook.stream_download("https://cdn.test/v.mp4") as response:
            assert b"".join(response.iter_bytes(100)) == b"x" * 1000
        assert "authorization" not in route.calls.last.request.headers
        mock.get("https://cdn.test/gone.mp4").mock(return_value=httpx.Response(403))
        with pytest.raises(CogVideoDownloadError) as exc, hook.stream_download("https://cdn.test/gone.mp4?sig=s3cr3t"):
            pass
        assert exc.value.url_expired
        assert "s3cr3t" not in str(exc.value)


def test_redirects_are_followed_hop_by_hop(hook) -> None:
    with respx.mock() as mock:
        mock.get("https://cdn.test/v.mp4").mock(
            return_value=redirect("https://other-cdn.test/a/v.mp4?X-Amz-Signature=s")
        )
        mock.get("https://other-cdn.test/a/v.mp4").mock(return_value=redirect("/b/v.mp4", 307))
        mock.get("https://other-cdn.test/b/v.mp4").mock(return_value=httpx.Response(200, content=b"video"))
        assert download(hook, "https://cdn.test/v.mp4") == b"video"
        assert [str(c.request.url) for c in mock.calls][-1] == "https://other-cdn.test/b/v.mp4"


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/iam/", "link-local"),
        ("http://metadata.test/computeMetadata/v1/", "link-local"),
        ("http://127.0.0.1:8080/admin", "loopback"),
        ("http://localhost/admin", "loopback"),
        ("http://[::1]/admin", "loopback"),
        ("http://[::ffff:127.0.0.1]/admin", "loopback"),
        ("http://rebind.test/admin", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://intranet.test/", "private"),
        ("http://[fd00::1]/", "private"),
        ("http://ula.test/", "private"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://224.0.0.1/", "multicast"),
    ],
)
def test_redirect_to_an_inside_address_is_refused(hook, location, kind) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://cdn.test/v.mp4").mock(return_value=redirect(location))
        inside = mock.route(url__regex=r"^http://(?!cdn\.test).*").mock(return_value=httpx.Response(200))
        error = refused(hook, "http://cdn.test/v.mp4")
        assert not inside.called, "nothing is sent to the refused address"
    assert f"is a {kind} address" in str(error)


def test_initial_url_to_an_inside_address_is_refused(hook) -> None:
    with respx.mock(assert_all_called=False) as mock:
        route = mock.get(url__regex=r".*").mock(return_value=httpx.Response(200))
        error = refused(hook, "http://169.254.169.254/latest/meta-data/?token=abc")
        assert not route.called
    assert "link-local" in str(error) and "token=abc" not in str(error)


def test_https_to_http_downgrade_is_refused(hook) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get("https://cdn.test/v.mp4").mock(return_value=redirect("http://other-cdn.test/v.mp4?sig=s3cr3t"))
        plain = mock.get("http://other-cdn.test/v.mp4").mock(return_value=httpx.Response(200))
        error = refused(hook, "https://cdn.test/v.mp4")
        assert not plain.called
    assert "from https to http://other-cdn.test/v.mp4" in str(error) and "s3cr3t" not in str(error)


def test_too_many_redirects_are_refused(hook) -> None:
    with respx.mock() as mock:
        route = mock.get(url__regex=r"https://cdn\.test/hop/\d+").mock(
            side_effect=lambda request: redirect(f"/hop/{int(request.url.path.rsplit('/', 1)[1]) + 1}")
        )
        error = refused(hook, "https://cdn.test/hop/0")
        assert route.call_count == MAX_DOWNLOAD_REDIRECTS + 1
    assert f"more than {MAX_DOWNLOAD_REDIRECTS} redirects" in str(error)


@pytest.mark.parametrize("url", ["ftp://cdn.test/v.mp4", "file:///etc/passwd", "https:///v.mp4"])
def test_only_http_urls(hook, url) -> None:
    assert "not an http(s) URL" in str(refused(hook, url))


def test_redirect_to_another_scheme_is_refused(hook) -> None:
    with respx.mock() as mock:
        mock.get("http://cdn.test/v.mp4").mock(return_value=redirect("ftp://cdn.test/v.mp4"))
        assert "not an http(s) URL" in str(refused(hook, "http://cdn.test/v.mp4"))


def test_unresolvable_host_is_a_retryable_download_error(hook) -> None:
    with pytest.raises(CogVideoDownloadError, match=r"cannot resolve nowhere\.test") as exc:
        download(hook, "https://nowhere.test/v.mp4?sig=s3cr3t")
    assert exc.value.retryable and "s3cr3t" not in str(exc.value)


def test_emulator_on_loopback_may_serve_loopback_files(emulator_hook) -> None:
    """The local emulator (and the test result-file server) hand out their own 127.0.0.1 URLs."""
    with respx.mock() as mock:
        mock.get("http://127.0.0.1:8765/files/v.mp4").mock(return_value=redirect("http://localhost:8765/files/w.mp4"))
        mock.get("http://localhost:8765/files/w.mp4").mock(return_value=httpx.Response(200, content=b"mp4"))
        assert download(emulator_hook, "http://127.0.0.1:8765/files/v.mp4") == b"mp4"


def test_emulator_on_loopback_still_may_not_reach_other_inside_addresses(emulator_hook) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.get("http://127.0.0.1:8765/files/v.mp4").mock(return_value=redirect("http://169.254.169.254/"))
        assert "link-local" in str(refused(emulator_hook, "http://127.0.0.1:8765/files/v.mp4"))
        assert "private" in str(refused(emulator_hook, "http://10.0.0.5/v.mp4"))


def test_downloads_ask_for_the_bytes_as_stored(hook) -> None:
    """Accept-Encoding: identity, so a size cap counts the bytes that arrive (no gzip expanding in a read)."""
    with respx.mock() as api:
        route = api.get("https://cdn.test/v.mp4").mock(return_value=httpx.Response(200, content=b"mp4"))
        assert download(hook, "https://cdn.test/v.mp4") == b"mp4"
    assert route.calls[0].request.headers["accept-encoding"] == "identity"
