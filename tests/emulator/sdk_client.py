"""Runs inside the official SDK's own virtualenv (zhipuai pins an older PyJWT than Airflow's).

Reads {"base_url", "key", "wrong_key", "image"} as JSON on stdin, drives the emulator through the
SDK's public API and prints one JSON object of outcomes for test_sdk_conformance.py to check.
"""

import json
import sys
import time

import zhipuai
from zhipuai import ZhipuAI

MAX_POLLS = 200


def until_done(client, task_id):
    for _ in range(MAX_POLLS):
        result = client.videos.retrieve_videos_result(id=task_id)
        if result.task_status != "PROCESSING":
            return result
        time.sleep(0.1)
    raise RuntimeError(f"task {task_id} still PROCESSING")


def generate(client, **kwargs):
    submitted = client.videos.generations(**kwargs)
    done = until_done(client, submitted.id)
    return {
        "submitted": {"id": submitted.id, "status": submitted.task_status, "request_id": submitted.request_id},
        "status": done.task_status,
        "model": done.model,
        "request_id": done.request_id,
        "urls": [(r.url, r.cover_image_url) for r in (done.video_result or [])],
    }


def error(call):
    try:
        call()
    except zhipuai.APIStatusError as exc:
        return {"type": type(exc).__name__, "status": exc.status_code}
    return {"type": None}


def main():
    args = json.load(sys.stdin)
    raw = ZhipuAI(api_key=args["key"], base_url=args["base_url"])
    signed = ZhipuAI(api_key=args["key"], base_url=args["base_url"], disable_token_cache=False)
    image, prompt = args["image"], "a paper boat drifting on a pond"
    out = {
        "text_raw_key": generate(raw, model="cogvideox-3", prompt=prompt, request_id="sdk-text-1"),
        "text_jwt": generate(signed, model="cogvideox-flash", prompt=prompt, size="720x480", fps=30),
        "image_jwt": generate(signed, model="cogvideox-2", image_url=image, prompt=prompt),
        "first_last_raw_key": generate(raw, model="cogvideox-3", image_url=[image, image], quality="speed"),
        "vidu_image": generate(raw, model="vidu2-image", image_url=image, duration=4),
        "invalid_size": error(lambda: raw.videos.generations(model="cogvideox-3", prompt=prompt, size="720x480")),
        "unknown_model": error(lambda: raw.videos.generations(model="cogvideox-99", prompt=prompt)),
    }
    for mode, disable_cache in (("raw", True), ("jwt", False)):
        wrong = ZhipuAI(api_key=args["wrong_key"], base_url=args["base_url"], disable_token_cache=disable_cache)
        out[f"wrong_key_{mode}"] = error(lambda c=wrong: c.videos.generations(model="cogvideox-3", prompt=prompt))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
