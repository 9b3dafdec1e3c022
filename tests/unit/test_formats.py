"""Ad formats: each name as each model renders it, and what is refused before anything is paid for."""

from __future__ import annotations

import pytest

from airflow_provider_cogvideo.capabilities import capabilities_for
from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.formats import AD_FORMATS, FormatChoice, checked_formats, choose_format

COGVIDEOX_3 = {
    "9:16": ("9x16", "1080x1920"),
    "16:9": ("16x9", "1920x1080"),
    "1:1": ("1x1", "1024x1024"),
    "tiktok": ("tiktok", "1080x1920"),
    "douyin": ("douyin", "1080x1920"),
    "reels": ("reels", "1080x1920"),
    "shorts": ("shorts", "1080x1920"),
    "amazon": ("amazon", "1920x1080"),
    "taobao": ("taobao", "1024x1024"),
}


def test_the_table_is_what_this_test_maps() -> None:
    assert list(AD_FORMATS) == list(COGVIDEOX_3)
    assert all(":" not in f.variant for f in AD_FORMATS.values())


@pytest.mark.parametrize(("name", "expected"), COGVIDEOX_3.items())
def test_cogvideox_3_renders_every_format_at_its_native_size(name: str, expected: tuple[str, str]) -> None:
    variant, size = expected
    choice = choose_format(name, "cogvideox-3")
    width, height = (int(side) for side in size.split("x"))
    assert (choice.variant, choice.width, choice.height, choice.options) == (variant, width, height, {"size": size})
    assert choice.size == size
    assert size in capabilities_for("cogvideox-3").sizes


def test_names_are_read_in_any_case_and_aliases_resolve() -> None:
    assert choose_format(" TikTok ", "cogvideox-3").format is AD_FORMATS["tiktok"]
    assert choose_format("Vertical", "cogvideox-3").format is AD_FORMATS["9:16"]
    assert choose_format("square", "cogvideox-3").format is AD_FORMATS["1:1"]


def test_cogvideox_2_renders_vertical_at_1080x1920() -> None:
    choice = choose_format("9:16", "cogvideox-2")
    assert (choice.width, choice.height, choice.options) == (1080, 1920, {"size": "1080x1920"})


def test_a_model_without_the_aspect_is_refused_naming_its_sizes_and_what_it_can_do() -> None:
    with pytest.raises(CogVideoValidationError) as caught:
        choose_format("9:16", "viduq1-image")
    assert caught.value.field == "formats"
    message = str(caught.value)
    assert "\"9:16\" cannot be rendered by 'viduq1-image'" in message
    assert "1920x1080 (16:9)" in message
    assert message.endswith("allowed formats for it: 16:9, amazon")


def test_a_vidu_model_with_aspect_ratios_is_sent_the_aspect_only() -> None:
    choice = choose_format("9:16", "vidu2-reference")
    assert choice.options == {"aspect_ratio": "9:16"}
    assert (choice.width, choice.height) == (720, 1280), "its 1280x720 size turned upright"
    text = choose_format("tiktok", "viduq1-text")
    assert (text.options, text.size) == ({"aspect_ratio": "9:16"}, "1080x1920")
    assert choose_format("1:1", "viduq1-text").size == "1080x1080"


def test_a_size_outside_the_preferred_ones_is_found_by_its_exact_ratio() -> None:
    choice = choose_format("16:9", "cogvideox-3", {"sizes": ["3840x2160", "wide", "1600x900", "1000x1000"]})
    assert choice.options == {"size": "1600x900"}, "the largest exact 16:9 within 1920"
    only_4k = choose_format("amazon", "cogvideox-3", {"sizes": ["3840x2160", "2048x1080"]})
    assert only_4k.options == {"size": "3840x2160"}, "2048x1080 is not 16:9"


def test_an_unknown_name_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(CogVideoValidationError) as caught:
        choose_format("instagram", "cogvideox-3")
    assert caught.value.field == "formats"
    assert "'instagram' is not an ad format" in str(caught.value)
    assert all(name in str(caught.value) for name in AD_FORMATS)


def test_checked_formats_keeps_the_order_and_allows_two_presets_of_one_aspect() -> None:
    choices = checked_formats(["tiktok", "douyin", "amazon"], "cogvideox-3")
    assert all(isinstance(c, FormatChoice) for c in choices)
    assert [c.variant for c in choices] == ["tiktok", "douyin", "amazon"]


def test_a_comma_separated_text_is_a_list() -> None:
    choices = checked_formats("9:16, 16:9,taobao", "cogvideox-3")
    assert [c.variant for c in choices] == ["9x16", "16x9", "taobao"]


@pytest.mark.parametrize("unset", [None, "", "None", [], ()])
def test_no_formats_is_the_empty_tuple(unset: object) -> None:
    assert checked_formats(unset, "cogvideox-3") == ()  # type: ignore[arg-type]


@pytest.mark.parametrize("names", [" , ", [*AD_FORMATS, "vertical"][:9]], ids=["0", "9"])
def test_one_to_eight_formats(names: object) -> None:
    with pytest.raises(CogVideoValidationError, match="must name 1 to 8 formats") as caught:
        checked_formats(names, "cogvideox-3")  # type: ignore[arg-type]
    assert caught.value.field == "formats"
    assert len(checked_formats(list(AD_FORMATS)[:8], "cogvideox-3")) == 8


@pytest.mark.parametrize("names", [["9:16", "9:16"], ["tiktok", "TikTok"], ["9:16", "vertical"]])
def test_the_same_format_twice_is_refused(names: list[str]) -> None:
    with pytest.raises(CogVideoValidationError, match="name it once") as caught:
        checked_formats(names, "cogvideox-3")
    assert caught.value.field == "formats"


def test_each_format_is_checked_against_the_model() -> None:
    with pytest.raises(CogVideoValidationError, match="cannot be rendered by 'vidu2-image'"):
        checked_formats(["amazon", "reels"], "vidu2-image")
    with pytest.raises(CogVideoValidationError, match="not a known video model"):
        checked_formats(["amazon"], "no-such-model")
