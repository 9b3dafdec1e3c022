"""The results: real H.264 MP4s (PyAV opens them; frame count and size as documented), PNG covers,
byte ranges, caching, and the fallback when an input image cannot be fetched."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from airflow_provider_cogvideo.emulator import EmulatorHandle
from tests.emulator.helpers import data_uri, wait_done

pytestmark = pytest.mark.asyncio


async def _render(api: httpx.AsyncClient, body: dict[str, Any]) -> tuple[bytes, bytes, dict[str, Any]]:
    submitted = await api.post("videos/generations", json=body)
    assert submitted.status_code == 200, submitted.text
    done = await wait_done(api, submitted.json()["id"])
    [result] = done["video_result"]
    video = await api.get(result["url"])
    cover = await api.get(result["cover_image_url"])
    assert (video.status_code, cover.status_code) == (200, 200)
    assert video.headers["content-type"] == "video/mp4"
    assert cover.headers["content-type"] == "image/png"
    assert int(video.headers["content-length"]) == len(video.content)
    return video.content, cover.content, done


def _probe(mp4: bytes) -> tuple[str, int, int, int]:
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        return stream.codec_context.name, stream.width, stream.height, frames


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # 1920x1080 scaled to a 480 px longest side; CogVideoX defaults: 30 fps x 5 s.
        ({"model": "cogvideox-3", "prompt": "a kite over a beach"}, (480, 270, 150)),
        # Portrait image, explicit size/fps/duration: 1080x1920 -> 270x480, 30 fps x 10 s.
        (
            {"model": "cogvideox-3", "image_url": data_uri(90, 160), "size": "1080x1920", "duration": 10},
            (270, 480, 300),
        ),
        # 60 fps x 5 s at 720x480 -> 480x320.
        (
            {"model": "cogvideox-2", "image_url": data_uri(72, 48), "size": "720x480", "fps": 60},
            (480, 320, 300),
        ),
        # Vidu: 24 fps and the row's fixed duration (4 s for vidu2), 1280x720 -> 480x270.
        ({"model": "vidu2-start-end", "image_url": [data_uri(), data_uri()]}, (480, 270, 96)),
        # viduq1-text with aspect 9:16: 1920 long side, portrait -> 270x480, 24 fps x 5 s.
        ({"model": "viduq1-text", "prompt": "a tall tower", "aspect_ratio": "9:16"}, (270, 480, 120)),
    ],
    ids=["text", "image-portrait", "image-60fps", "vidu-start-end", "vidu-aspect"],
)
async def test_mp4_plays_with_expected_frames_and_size(
    api: httpx.AsyncClient, body: dict[str, Any], expected: tuple[int, int, int]
) -> None:
    video, cover, _ = await _render(api, body)
    codec, width, height, frames = _probe(video)
    assert codec == "h264"
    assert (width, height, frames) == expected
    with Image.open(io.BytesIO(cover)) as image:
        assert (image.format, image.size) == ("PNG", expected[:2])


async def test_first_last_frame_pair_on_cogvideox3(api: httpx.AsyncClient) -> None:
    """No size given: CogVideoX follows the image's aspect (4:3 -> 1440x1080 -> 480x360)."""
    video, _, _ = await _render(api, {"model": "cogvideox-3", "image_url": [data_uri(), data_uri(64, 48, "JPEG")]})
    assert _probe(video)[1:] == (480, 360, 150)


async def test_unfetchable_image_url_falls_back_to_the_prompt_card(api: httpx.AsyncClient) -> None:
    body = {"model": "cogvideox-flash", "prompt": "offline", "image_url": "http://127.0.0.1:9/missing.png"}
    video, _, _ = await _render(api, body)
    assert _probe(video)[3] == 150


async def test_range_requests_and_cache(api: httpx.AsyncClient, shared_emulator: EmulatorHandle) -> None:
    video, _, done = await _render(api, {"model": "cogvideox-flash", "prompt": "ranges"})
    url = done["video_result"][0]["url"]
    size = len(video)

    again = await api.get(url)
    assert again.content == video  # served from the cache, byte for byte

    cases = {
        "bytes=0-99": (0, 100),
        f"bytes={size - 10}-": (size - 10, size),
        "bytes=-25": (size - 25, size),
        f"bytes=100-{size + 50}": (100, size),
    }
    for header, (start, end) in cases.items():
        part = await api.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{size}"
        assert int(part.headers["content-length"]) == end - start
        assert part.content == video[start:end]

    unsatisfiable = await api.get(url, headers={"Range": f"bytes={size}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
    assert (await api.get(url, headers={"Range": "bytes=0-1,5-6"})).status_code == 200  # multi-range: whole file

    head = await api.head(url)
    assert (head.status_code, head.headers["content-length"], head.content) == (200, str(size), b"")
    assert head.headers["accept-ranges"] == "bytes"


async def test_no_file_before_success(api: httpx.AsyncClient, shared_emulator: EmulatorHandle) -> None:
    task_id = (await api.post("videos/generations", json={"model": "cogvideox-3", "prompt": "x"})).json()["id"]
    response = await api.get(f"{shared_emulator.url_root}/files/video/{task_id}_0.mp4")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/xml"


async def test_render_ahead_encodes_halfway_through_the_job(tmp_path) -> None:
    """``render_ahead``: the files exist before anyone downloads them, rendered while the job was
    still processing (off the moment jobs end together), and the download serves those very files."""
    from airflow_provider_cogvideo.emulator import running_emulator
    from airflow_provider_cogvideo.emulator.config import EmulatorConfig
    from tests.emulator.helpers import api_client

    config = EmulatorConfig(duration=1.0, jitter=0.0, seed=3, unlimited=True, data_dir=tmp_path, render_ahead=True)
    with running_emulator(config) as handle:
        async with api_client(handle) as client:
            submitted = await client.post("videos/generations", json={"model": "cogvideox-flash", "prompt": "ahead"})
            task_id = submitted.json()["id"]
            assert list(tmp_path.glob(f"{task_id}-*")) == []  # nothing yet: the timer is at half the render
            done = await wait_done(client, task_id)
            for _ in range(200):  # the encode itself may outlast the job on a loaded machine
                rendered = sorted(p.name for p in tmp_path.glob(f"{task_id}-*") if not p.name.startswith("."))
                if len(rendered) == 2:
                    break
                await asyncio.sleep(0.05)
            assert len(rendered) == 2 and rendered[1].endswith("_cover.png"), rendered
            mtimes = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob(f"{task_id}-*")}
            video = await client.get(done["video_result"][0]["url"])
    assert _probe(video.content)[0] == "h264"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob(f"{task_id}-*")} == mtimes  # served, not redone


async def test_pending_renders_are_cancelled_on_close(tmp_path) -> None:
    """A render scheduled for later must not start once the emulator is closing (it would write
    into a data directory being removed)."""
    from airflow_provider_cogvideo.emulator.media import MediaSpec, MediaStore

    store = MediaStore(tmp_path)
    spec = MediaSpec(model="cogvideox-flash", width=32, height=18, fps=8, frames=8, prompt="p", images=())
    store.render_later("t1", spec, 0.2)
    store.close()
    await asyncio.sleep(0.6)
    assert list(tmp_path.glob("t1-*")) == []
