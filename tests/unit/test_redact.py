"""The small facts every module shares through ``redact.py``: how quoted text is cut, whether text is an
http(s) URL, how a host and port are written in a URL."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.redact import authority, is_http_url, scrub, shorten


def test_shorten_keeps_short_text_and_says_how_much_was_left_out() -> None:
    assert shorten("x" * 80, 80) == "x" * 80
    assert shorten("x" * 81, 80) == "x" * 80 + "... (1 more characters)"
    assert scrub("key=s3cr3t " + "y" * 600, ["s3cr3t"], limit=10) == "key=*** yy... (598 more characters)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("http://a", True), ("https://a/b", True), ("HTTPS://a", False), (" https://a", False), ("s3://b/k", False),
     ("ftp://a", False), ("data:image/png;base64,AA", False), ("/tmp/a.png", False)],
)  # fmt: skip
def test_is_http_url_is_the_written_prefix(text: str, expected: bool) -> None:
    assert is_http_url(text) is expected


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [("api.z.ai", None, "api.z.ai"), ("api.z.ai", 8443, "api.z.ai:8443"), ("127.0.0.1", 80, "127.0.0.1:80"),
     ("::1", None, "[::1]"), ("::1", 8765, "[::1]:8765"), ("[::1]", 8765, "[::1]:8765")],
)  # fmt: skip
def test_authority_brackets_ipv6(host: str, port: int | None, expected: str) -> None:
    assert authority(host, port) == expected
