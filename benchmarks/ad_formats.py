"""What one video per ad format costs ingestion: framing each product photo to each format (issue 25).

Ingestion frames the photo of every (product, format) it hands on to be paid, in its one task, before
anything is paid (:func:`airflow_provider_cogvideo.image_framing.framed_jpeg`: decode, orient, sRGB,
pad or crop to exactly the format's frame, JPEG within 5 MB). This measures that step on this machine,
per photo size, format and fit: wall time per image (median, p95), the JPEG's size, and what it adds to
an ingestion of ``[core] max_map_length`` (1,024) items. The S3 write of each framed JPEG is not counted
(one PUT each, like any staged re-encode).

    .venv/bin/python benchmarks/ad_formats.py            # figures: benchmarks/README.md, section 10
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import percentile, table, write_results

from airflow_provider_cogvideo.formats import choose_format
from airflow_provider_cogvideo.image_framing import framed_jpeg
from airflow_provider_cogvideo.sizes import MiB
from airflow_provider_cogvideo.testing.products import render_product_image, sample_products

PHOTO_SIZES = ((1200, 1200), (3000, 4000))
"""A catalog's square product shot, and a phone photo (12 MP, portrait)."""
FORMATS = ("9:16", "16:9", "1:1")
CATALOG_ITEMS = 1024


def _photo(size: tuple[int, int], index: int) -> bytes:
    from PIL import Image

    product = sample_products(index + 1)[index]
    rendered = Image.open(io.BytesIO(render_product_image(product, size=size)))
    out = io.BytesIO()
    rendered.convert("RGB").save(out, format="JPEG", quality=90)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=6, help="distinct photos per size")
    parser.add_argument("--rounds", type=int, default=3, help="framings of each photo per cell")
    args = parser.parse_args()
    rows, cells = [], []
    for size in PHOTO_SIZES:
        photos = [_photo(size, i) for i in range(args.photos)]
        for name in FORMATS:
            choice = choose_format(name, "cogvideox-3")
            for fit in ("pad", "crop"):
                seconds, sizes = [], []
                for _ in range(args.rounds):
                    for data in photos:
                        start = time.perf_counter()
                        jpeg = framed_jpeg(data, choice.width, choice.height, fit=fit, max_bytes=5 * MiB, label="bench")
                        seconds.append(time.perf_counter() - start)
                        sizes.append(len(jpeg))
                median = statistics.median(seconds)
                cell = {
                    "photo": f"{size[0]}x{size[1]}",
                    "format": name,
                    "frame": choice.size,
                    "fit": fit,
                    "median_ms": round(median * 1000, 1),
                    "p95_ms": round(percentile(seconds, 95) * 1000, 1),
                    "jpeg_kib": round(statistics.median(sizes) / 1024),
                    "per_1024_items_s": round(median * CATALOG_ITEMS, 1),
                }
                cells.append(cell)
                rows.append(list(cell.values()))
    headers = ["photo", "format", "frame", "fit", "median ms", "p95 ms", "JPEG KiB", f"s per {CATALOG_ITEMS} items"]
    print(table(headers, rows))
    path = write_results("ad_formats", {"photos": args.photos, "rounds": args.rounds, "cells": cells})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
