"""Product images in S3 -> one video per product -> videos and covers in S3 -> a run manifest.

* ``ingest`` lists the product images under ``source_prefix`` (with optional ``<name>.json``
  sidecars: title, selling points, style...), validates or re-encodes them and renders one prompt
  per product.
* ``product`` is a task group mapped over the products: ``generate`` (image-to-video, in the
  ``cogvideo`` pool) then ``upload`` (streams the MP4 and cover into ``output_bucket``). Because the
  whole group is mapped, one product's failure leaves the other products' uploads running.
* ``manifest`` (runs whatever happened) writes ``manifests/<ds>/<run_id>.json`` to the output bucket:
  per product the video URI, sha256, job id, model, prompt, price and status, failed products with
  their error, images rejected at ingestion with the reason, and logs the run's total list price.

The generation tasks run in the pool ``cogvideo`` (``cogvideo pool --tier V0`` creates it with
``include_deferred`` on, so rendering jobs keep their slot). Parsing this file touches no
connection, variable or network.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task, task_group

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator

MODEL = os.environ.get("COGVIDEO_PIPELINE_MODEL", "cogvideox-3")
POOL = os.environ.get("COGVIDEO_PIPELINE_POOL", "cogvideo")
# Fixed seconds between polls, for renders of seconds (the emulator in `make demo` and the integration
# test); unset, the adaptive schedule suits real renders of minutes.
POLL_INTERVAL = float(os.environ.get("COGVIDEO_PIPELINE_POLL_INTERVAL") or 0) or None
PROMPT = (
    "{title}: {selling_points}. Product video in a {style} style, the product turning slowly in soft "
    "studio light, gentle camera push-in."
)

with DAG(
    dag_id="product_video_pipeline",
    description="Product images in S3 -> CogVideoX videos -> S3, with a manifest",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_BUCKET", "products"), type="string"),
        "source_prefix": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_PREFIX", "incoming/"), type="string"),
        "output_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_OUTPUT_BUCKET", "product-videos"), type="string"),
    },
    tags=["cogvideo", "example"],
) as dag:
    products = S3ProductImagesOperator(
        task_id="ingest",
        s3_bucket="{{ params.source_bucket }}",
        prefix="{{ params.source_prefix }}",
        staging_prefix="staging/{{ ds }}/",
        prompt_template=PROMPT,
    )

    @task_group
    def product(image: str, prompt: str, metadata: dict[str, Any]) -> None:
        video = CogVideoGenerateOperator(
            task_id="generate",
            model=MODEL,
            image=image,
            prompt=prompt,
            metadata=metadata,
            pool=POOL,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(hours=1),
        )
        CogVideoToS3Operator(
            task_id="upload",
            result=video.output,
            s3_bucket="{{ params.output_bucket }}",
            s3_key="videos/{{ ds }}/{metadata[product_id]}.mp4",
            replace=True,
        )

    @task(trigger_rule="all_done")
    def manifest(products: list[dict[str, Any]]) -> dict[str, Any]:
        """Write the run manifest; list failed products with their error; log the total cost."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        context = get_current_context()
        ti, params = context["ti"], context["params"]
        rows, total, currency = [], 0.0, None
        for index, item in enumerate(products):
            upload = ti.xcom_pull(task_ids="product.upload", map_indexes=index)
            product_id = item["metadata"].get("product_id")
            if upload:
                total += upload.get("price") or 0.0
                currency = upload.get("price_currency") or currency
                rows.append(
                    {
                        "product_id": product_id,
                        "status": "uploaded",
                        "video": upload["s3_uri"],
                        "cover": upload.get("cover_s3_uri"),
                        "sha256": upload["sha256"],
                        "size": upload["size"],
                        "job_id": upload.get("id"),
                        "model": upload.get("model"),
                        "prompt": upload.get("prompt"),
                        "price": upload.get("price"),
                    }
                )
                continue
            error = None
            for failed_task in ("product.upload", "product.generate"):
                error = error or ti.xcom_pull(task_ids=failed_task, key="error", map_indexes=index)
            rows.append({"product_id": product_id, "status": "failed", "image": item["image"], "error": error})
        failed = [row for row in rows if row["status"] == "failed"]
        # Images ingestion refused (undecodable, bad sidecar, duplicate id) never became a product: listed
        # too, so the manifest accounts for every file that arrived.
        rejected = ti.xcom_pull(task_ids="ingest", key="rejected") or []
        for item in rejected:
            stem = item["image"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
            rows.append({"product_id": stem, "status": "rejected", "image": item["image"], "error": item["reason"]})
        document = {
            "dag_run": context["run_id"],
            "products": rows,
            "uploaded": len(rows) - len(failed) - len(rejected),
            "failed": len(failed),
            "rejected": len(rejected),
            "total_price": round(total, 4),
            "currency": currency,
        }
        key = f"manifests/{context['ds']}/{context['run_id']}.json".replace(":", "_").replace("+", "_")
        S3Hook().load_string(json.dumps(document, indent=2), key=key, bucket_name=params["output_bucket"], replace=True)
        print(
            f"Total cost of this run: {total:.2f} {currency or ''} (list price) for {document['uploaded']} videos; "
            f"{len(failed)} failed, {len(rejected)} image(s) rejected; manifest s3://{params['output_bucket']}/{key}"
        )
        summary = {k: document[k] for k in ("uploaded", "failed", "rejected")}
        return {"manifest": f"s3://{params['output_bucket']}/{key}", **summary}

    manifest(products.output) << product.expand_kwargs(products.output)
