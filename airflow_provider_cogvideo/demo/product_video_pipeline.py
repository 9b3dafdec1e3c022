"""Product images in S3 -> one video per product -> videos and covers in S3 -> a run manifest.

* ``ingest`` lists the product images under ``source_prefix`` (with optional ``<name>.json``
  sidecars: title, selling points, style...), validates or re-encodes them and renders one prompt
  per product.
* ``plan`` prices the run from the capability table before anything is paid (products x list price)
  and fails, paying nothing, when that estimate exceeds the ``max_total_price`` param. The same
  budget is enforced again before every single submit (retries and resubmits included).
* ``product`` is a task group mapped over the products: ``generate`` (image-to-video, in the
  ``cogvideo`` pool) then ``upload`` (streams the MP4 and cover into ``output_bucket``). Because the
  whole group is mapped, one product's failure leaves the other products' uploads running.
* ``manifest`` (runs whatever happened) writes ``manifests/<day>/<run_id>.json`` to the output bucket:
  per product the video URI, sha256, job id, model, prompt, price and status (``uploaded``,
  ``failed`` with the error, ``ambiguous`` with the ``request_id`` to look up in the console: a job
  may exist and be billed, ``rejected`` at ingestion with the reason, or ``planned`` in a dry run),
  the estimated and the actual cost, and logs the run's total. From the same rows it writes the
  review gallery ``gallery/<day>/<run_id>.html`` (``write_gallery``): one card per product with its
  cover, a video player, the prompt, options, checksum, price and status or reason, media by
  presigned URLs valid 7 days. It logs the page's URL; the manifest records where the page is.

``<day>`` in every key is the run's logical date, or, for a run triggered without one (Airflow 3:
the CLI, the REST API or the UI may leave it unset), the day it was triggered for (``run_after``).

Params: ``dry_run`` validates and prices everything, sends nothing, and writes the manifest as a plan
with what the run *would* cost; ``max_total_price`` (unset = no limit) is the run's budget.

The generation tasks run in the pool ``cogvideo`` (``cogvideo pool --tier V0`` creates it with
``include_deferred`` on, so rendering jobs keep their slot). Parsing this file touches no
connection, variable or network.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, Param, get_current_context, task, task_group

from airflow_provider_cogvideo.operators.cogvideo import CogVideoGenerateOperator
from airflow_provider_cogvideo.operators.product_images import S3ProductImagesOperator, product_id_of, source_image_of
from airflow_provider_cogvideo.transfers.cogvideo_to_s3 import CogVideoToS3Operator
from airflow_provider_cogvideo.xcom import XCOM_ERROR, XCOM_REJECTED, XCOM_SPEND

MODEL = os.environ.get("COGVIDEO_PIPELINE_MODEL", "cogvideox-3")
POOL = os.environ.get("COGVIDEO_PIPELINE_POOL", "cogvideo")
# Fixed seconds between polls, for renders of seconds (the emulator in `make demo` and the integration
# test); unset, the adaptive schedule suits real renders of minutes.
POLL_INTERVAL = float(os.environ.get("COGVIDEO_PIPELINE_POLL_INTERVAL") or 0) or None
UPLOADS_AT_ONCE = max(1, int(os.environ.get("COGVIDEO_PIPELINE_UPLOADS_AT_ONCE") or 2))
"""Uploads running at once per run. They are off the tier's critical path: when a wave of renders
ends together, unthrottled uploads take the workers' CPU from the submits that refill the tier."""
# "none" for manually triggered runs only (the distributed test and the tier benchmark trigger without a logical date).
SCHEDULE = None if os.environ.get("COGVIDEO_PIPELINE_SCHEDULE", "@daily").lower() == "none" else "@daily"
PRODUCT_ID = "{{ task.metadata['product_id'] if task.metadata is defined else task.result['metadata']['product_id'] }}"
"""The label of a mapped product task in the grid: its product id."""
RUN_DAY = "{{ (dag_run.logical_date or dag_run.run_after).strftime('%Y-%m-%d') }}"
"""The run's day for S3 keys: its logical date, or when it has none (a manual run), ``run_after``."""
RUN_KEY = RUN_DAY + "/{{ run_id | replace(':', '_') | replace('+', '_') }}"
"""``<day>/<run_id>`` in the manifest's and the gallery's keys (``:`` and ``+`` of the run id replaced)."""
PROMPT = (
    "{title}: {selling_points}. Product video in a {style} style, the product turning slowly in soft "
    "studio light, gentle camera push-in."
)

with DAG(
    dag_id="product_video_pipeline",
    description="Product images in S3 -> CogVideoX videos -> S3, with a manifest",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30)},
    params={
        "source_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_BUCKET", "products"), type="string"),
        "source_prefix": Param(os.environ.get("COGVIDEO_PIPELINE_SOURCE_PREFIX", "incoming/"), type="string"),
        "output_bucket": Param(os.environ.get("COGVIDEO_PIPELINE_OUTPUT_BUCKET", "product-videos"), type="string"),
        "dry_run": Param(False, type="boolean", description="Validate and price everything; send nothing."),
        "max_total_price": Param(
            None,
            type=["null", "number"],
            minimum=0,
            description="The run's budget in list price (CNY on BigModel, USD on Z.AI); unset = no limit.",
        ),
    },
    tags=["cogvideo", "example"],
) as dag:
    products = S3ProductImagesOperator(
        task_id="ingest",
        s3_bucket="{{ params.source_bucket }}",
        prefix="{{ params.source_prefix }}",
        staging_prefix=f"staging/{RUN_DAY}/",
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
            # Rendering takes minutes: wait in the triggerer, holding no worker slot (run one).
            deferrable=True,
            poll_interval=POLL_INTERVAL,
            timeout=timedelta(hours=1),
            dry_run="{{ params.dry_run }}",
            max_total_price="{{ params.max_total_price }}",
            map_index_template=PRODUCT_ID,  # the grid shows product ids, not 0..N
        )
        CogVideoToS3Operator(
            task_id="upload",
            map_index_template=PRODUCT_ID,
            result=video.output,
            s3_bucket="{{ params.output_bucket }}",
            s3_key=f"videos/{RUN_DAY}/{{metadata[product_id]}}.mp4",
            replace=True,
            max_active_tis_per_dagrun=UPLOADS_AT_ONCE,
        )

    @task
    def plan(products: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Price the run before anything is paid; refuse it, paying nothing, when it exceeds the budget."""
        from airflow.providers.common.compat.sdk import AirflowFailException

        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        context = get_current_context()
        price, currency = CogVideoHook().price_of(MODEL)
        estimate = round(len(products) * (price or 0.0), 4)
        budget = context["params"].get("max_total_price")
        refused = budget is not None and estimate > budget
        context["ti"].xcom_push(
            key="estimate", value={"price": estimate, "currency": currency, "budget": budget, "refused": refused}
        )
        print(f"Estimated cost of this run: {estimate:g} {currency} (list price) for {len(products)} product(s)")
        if refused:
            raise AirflowFailException(
                f"The run would cost {estimate:g} {currency} ({len(products)} products x {price:g} {currency}, "
                f"model {MODEL}), over max_total_price={budget:g}: nothing was submitted."
            )
        return products

    @task(trigger_rule="all_done")
    def manifest(products: list[dict[str, Any]], key: str, gallery_key: str) -> dict[str, Any]:
        """Write the run manifest and its gallery; list failed products with their error; log the total cost."""
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from airflow_provider_cogvideo.operators.gallery import write_gallery

        context = get_current_context()
        ti, params = context["ti"], context["params"]
        rows, total, currency = [], 0.0, None
        estimate = ti.xcom_pull(task_ids="plan", key="estimate") or {}
        for index, item in enumerate(products):
            upload = ti.xcom_pull(task_ids="product.upload", map_indexes=index)
            product_id = item["metadata"].get("product_id")
            # The image as it arrived (a re-encoded one's staged JPEG is what was sent, not its source).
            known = {"product_id": product_id, "title": item["metadata"].get("title"), "image": source_image_of(item)}
            if upload:
                total += upload.get("price") or 0.0
                currency = upload.get("price_currency") or currency
                rows.append(
                    {
                        **known,
                        "status": "uploaded",
                        "video": upload["s3_uri"],
                        "cover": upload.get("cover_s3_uri"),
                        "sha256": upload["sha256"],
                        "size": upload["size"],
                        "job_id": upload.get("id"),
                        "model": upload.get("model"),
                        "prompt": upload.get("prompt"),
                        "request": upload.get("request"),
                        "price": upload.get("price"),
                    }
                )
                continue
            generated = ti.xcom_pull(task_ids="product.generate", map_indexes=index)
            if isinstance(generated, dict) and generated.get("task_status") == "DRY_RUN":
                total += generated.get("price") or 0.0
                currency = generated.get("price_currency") or currency
                rows.append(
                    {
                        **known,
                        "status": "planned",
                        "model": generated.get("model"),
                        "prompt": generated.get("prompt"),
                        "request": generated.get("request"),
                        "price": generated.get("price"),
                    }
                )
                continue
            if estimate.get("refused"):
                rows.append(
                    {
                        **known,
                        "status": "not_submitted",
                        "error": f"the run's estimate {estimate['price']:g} is over "
                        f"max_total_price={estimate['budget']:g}: nothing was submitted",
                    }
                )
                continue
            error = None
            for failed_task in ("product.upload", "product.generate"):
                error = error or ti.xcom_pull(task_ids=failed_task, key=XCOM_ERROR, map_indexes=index)
            if isinstance(error, dict) and error.get("status") == "ambiguous":
                rows.append(
                    {
                        **known,
                        "status": "ambiguous",
                        "request_id": error.get("request_id"),
                        "error": error,
                        "check": f"Look up request_id {error.get('request_id')} in the BigModel console (billing / "
                        "API logs): a job may exist and be billed. Re-run this product only once you know.",
                    }
                )
                continue
            rows.append({**known, "status": "failed", "error": error})
        failed = [row for row in rows if row["status"] in ("failed", "ambiguous", "not_submitted")]
        planned = [row for row in rows if row["status"] == "planned"]
        # Images ingestion refused (undecodable, bad sidecar, duplicate id) never became a product: listed
        # too, so the manifest accounts for every file that arrived.
        rejected = ti.xcom_pull(task_ids="ingest", key=XCOM_REJECTED) or []
        for item in rejected:
            row = {"product_id": product_id_of(item["image"]), "status": "rejected", "image": item["image"]}
            rows.append({**row, "error": item["reason"]})
        spend = ti.xcom_pull(task_ids="product.generate", key=XCOM_SPEND) or []
        spend = [spend] if isinstance(spend, dict) else spend
        actual = round(sum(float(e.get("paid") or 0.0) for e in spend if isinstance(e, dict)), 4)
        dag_run = context["dag_run"]
        started = dag_run.start_date
        document = {
            "dag_run": context["run_id"],
            "gallery": f"s3://{params['output_bucket']}/{gallery_key}",
            "elapsed_seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1) if started else None,
            "plan": bool(params.get("dry_run")),
            "products": rows,
            "uploaded": len(rows) - len(failed) - len(rejected) - len(planned),
            "failed": sum(1 for row in failed if row["status"] == "failed"),
            "ambiguous": sum(1 for row in failed if row["status"] == "ambiguous"),
            "not_submitted": sum(1 for row in failed if row["status"] == "not_submitted"),
            "rejected": len(rejected),
            "planned": len(planned),
            "total_price": round(total, 4),
            "estimated_price": estimate.get("price"),
            "actual_price": actual,
            "budget": estimate.get("budget"),
            "currency": currency or estimate.get("currency"),
        }
        S3Hook().load_string(json.dumps(document, indent=2), key=key, bucket_name=params["output_bucket"], replace=True)
        gallery = write_gallery(
            document, s3_bucket=params["output_bucket"], s3_key=gallery_key, log=context["task"].log
        )
        if document["plan"]:
            print(
                f"Dry run: this run would cost {total:.2f} {document['currency'] or ''} (list price) for "
                f"{len(planned)} videos; nothing was sent; plan s3://{params['output_bucket']}/{key}"
            )
        else:
            print(
                f"Total cost of this run: {total:.2f} {currency or ''} (list price) for {document['uploaded']} videos "
                f"(submits sent: {actual:.2f}); {document['failed']} failed, {document['ambiguous']} ambiguous, "
                f"{len(rejected)} image(s) rejected; manifest s3://{params['output_bucket']}/{key}"
            )
        if estimate.get("refused"):
            from airflow.providers.common.compat.sdk import AirflowFailException

            # The manifest is written; the run itself must not look like a success.
            raise AirflowFailException(
                f"Run refused by its budget: estimate {estimate['price']:g} {document['currency']} for "
                f"{len(products)} products is over max_total_price={estimate['budget']:g}; manifest s3://"
                f"{params['output_bucket']}/{key}"
            )
        summary = {k: document[k] for k in ("uploaded", "failed", "ambiguous", "not_submitted", "rejected", "planned")}
        return {"manifest": f"s3://{params['output_bucket']}/{key}", "gallery_url": gallery["url"], **summary}

    planned = plan(products.output)
    keys = {"key": f"manifests/{RUN_KEY}.json", "gallery_key": f"gallery/{RUN_KEY}.html"}
    manifest(products.output, **keys) << product.expand_kwargs(planned)
