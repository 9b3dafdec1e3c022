"""The fingerprint of a video (what makes a video "already made") and the one canonical digest it
shares with the retry fingerprint of ``prepare``."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from airflow_provider_cogvideo.fingerprint import canonical_digest, video_fingerprint
from airflow_provider_cogvideo.prepare import request_fingerprint

IMAGE_A = hashlib.sha256(b"front photo").hexdigest()
IMAGE_B = hashlib.sha256(b"back photo").hexdigest()
BASE: dict[str, Any] = {
    "model": "cogvideox-3",
    "options": {"size": "1920x1080", "fps": 30, "duration": 5, "quality": "quality", "with_audio": False},
    "prompt": "A red mug turns slowly on a wooden table",
    "image_digests": [IMAGE_A],
    "variant": "default",
    "extra_body": None,
}


def fingerprint(**changes: Any) -> str:
    return video_fingerprint(**{**BASE, **changes})


def with_options(**changes: Any) -> str:
    return fingerprint(options={**BASE["options"], **changes})


def test_canonical_digest_is_sha256_of_sorted_json() -> None:
    assert canonical_digest({"b": [2, 3], "a": 1}) == hashlib.sha256(b'{"a": 1, "b": [2, 3]}').hexdigest()
    assert canonical_digest({"a": 1, "b": [2, 3]}) == canonical_digest({"b": [2, 3], "a": 1})


def test_the_recipe_is_pinned() -> None:
    """Changing how a fingerprint is made makes every catalog look changed (and be paid again): a
    change here must be deliberate. The expected value is the sha256 of the canonical JSON below."""
    expected_json = (
        '{"extra_body": {}, "images": ["' + IMAGE_A + '"], "model": "cogvideox-3", '
        '"options": {"duration": 5, "fps": 30, "quality": "quality", "size": "1920x1080", "with_audio": false}, '
        '"prompt": "A red mug turns slowly on a wooden table", "variant": "default"}'
    )
    assert fingerprint() == hashlib.sha256(expected_json.encode()).hexdigest()


@pytest.mark.parametrize(
    "changed",
    [
        {"model": "cogvideox-2"},
        {"prompt": "A blue mug turns slowly on a wooden table"},
        {"prompt": None},
        {"image_digests": [IMAGE_B]},
        {"image_digests": [IMAGE_A, IMAGE_B]},
        {"image_digests": []},
        {"variant": "douyin-9x16"},
        {"extra_body": {"seed": 7}},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_input_changes_the_fingerprint(changed: dict[str, Any]) -> None:
    assert fingerprint(**changed) != fingerprint()


@pytest.mark.parametrize(
    "option",
    [
        {"size": "1280x960"},
        {"fps": 60},
        {"duration": 10},
        {"quality": "speed"},
        {"with_audio": True},
        {"aspect_ratio": "16:9"},
        {"style": "anime"},
        {"movement_amplitude": "large"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_each_option_changes_the_fingerprint(option: dict[str, Any]) -> None:
    assert with_options(**option) != fingerprint()


def test_the_order_of_images_matters() -> None:
    """A first and a last frame are not interchangeable."""
    assert fingerprint(image_digests=[IMAGE_A, IMAGE_B]) != fingerprint(image_digests=[IMAGE_B, IMAGE_A])


@pytest.mark.parametrize(
    "same",
    [
        {"options": {**BASE["options"], "request_id": "req-0001"}},
        {"options": {**BASE["options"], "user_id": "user-000001"}},
        {"options": {**BASE["options"], "style": None, "aspect_ratio": "None", "movement_amplitude": ""}},
        {"options": {**BASE["options"], "model": "vidu2-image", "prompt": "other", "image_url": "https://x/y.png"}},
        {"options": {**BASE["options"], "extra_body": {"seed": 7}}},
        {"options": dict(reversed(list(BASE["options"].items())))},
        {"model": "CogVideoX-3"},
        {"model": " cogvideox-3 "},
        {"extra_body": {}},
        {"prompt": BASE["prompt"]},
    ],
    ids=[
        "request_id",
        "user_id",
        "unset options",
        "non-options",
        "extra_body in options",
        "option order",
        "model alias",
        "model blanks",
        "empty extra_body",
        "same prompt",
    ],
)
def test_what_does_not_change_the_video_does_not_change_the_fingerprint(same: dict[str, Any]) -> None:
    assert fingerprint(**same) == fingerprint()


def test_an_unset_prompt_is_no_prompt() -> None:
    """A rendered ``{{ params.prompt }}`` that was None arrives as ``"None"``: the same as no prompt."""
    assert fingerprint(prompt="None") == fingerprint(prompt=None) == fingerprint(prompt="")


BODY = {
    "model": "cogvideox-3",
    "prompt": "A red mug turns slowly",
    "size": "1920x1080",
    "fps": 30,
    "request_id": "req-123456",
    "image_url": "data:...",
}


@pytest.mark.parametrize(
    ("body", "images", "generation", "expected"),
    [
        (BODY, ["ab" * 32], None, "a2f782008a935034e57a38f7182bf3d9eb01102a0f7d1e6e245090794fb46715"),
        (BODY, ["ab" * 32], "v2", "a4b999e9c3d0f25109e6c8b178bacb410b89ee4ff0f923d6a597b0aeba69c2dd"),
        (
            {"model": "cogvideox-3", "prompt": "维持"},
            [],
            None,
            "e9690cac4e3042565ee5b97701af3d37010980bda2531b546dfd86ae3e836adb",
        ),
    ],
)
def test_request_fingerprint_is_unchanged(
    body: dict[str, Any], images: list[str], generation: str | None, expected: str
) -> None:
    """Written down before ``request_fingerprint`` moved onto ``canonical_digest``: a job submitted
    by the previous release must still be recognised by its retry after an upgrade."""
    assert request_fingerprint(body, images, generation) == expected
