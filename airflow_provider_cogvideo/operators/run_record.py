"""CogVideoRunRecordOperator: the last task of a product pipeline run, which writes what the run did.

It runs whatever happened upstream (``trigger_rule="all_done"``) and, from the tasks' XComs:

1. builds the run manifest (:func:`~airflow_provider_cogvideo.manifest.build_manifest`: one row per
   product and variant, the counts, the cost) and writes it as JSON to ``s3_bucket``/``manifest_key``;
2. writes the review gallery page next to it (:func:`~.operators.gallery.write_gallery`);
3. logs the run's totals (:func:`~airflow_provider_cogvideo.manifest.summary_line`);
4. with a ``video_index``: holds every ``ambiguous`` product (a hold object: later runs do not pay for
   it again until a person clears it), compacts the index with the entries this run's uploads wrote
   (they need no read-back), then clears the hold of every product uploaded or reused this run that
   had one (a run with ``release_held`` took it: paid and safely stored now, or its video was found);
5. sets the ``extra`` of its outlet assets' events to ``{"manifest", "gallery", "review"}`` (the
   manifest's and the gallery's ``s3://`` URIs and the ``review`` mode): the review DAG is scheduled on
   that asset and reads the run from its manifest (:mod:`~airflow_provider_cogvideo.operators.review_plan`);
6. fails the task (``AirflowFailException``, after everything is written) when the plan refused the
   run for its budget, so that the run does not look like a success.

In a DAG::

    CogVideoRunRecordOperator(
        task_id="record",
        s3_bucket="{{ params.output_bucket }}",
        manifest_key="manifests/{{ ds }}/{{ run_id }}.json",
        gallery_key="gallery/{{ ds }}/{{ run_id }}.html",
        video_index="s3://{{ params.output_bucket }}/videos/",
        dry_run="{{ params.dry_run }}",
    ) << product.expand_kwargs(planned.output)

**One XCom pull per (task, key), whatever the catalog's size.** ``ti.xcom_pull(task_ids=..., key=...)``
with ``map_indexes`` left *unset* asks the API server for every map index's value at once
(``XCom.get_all``, one ``GetXComSequenceSlice`` request): checked in the task SDK of Airflow 3.1.3
(task-sdk 1.1.3) and of Airflow 3.3.2 (task-sdk 1.3.2). What it returns: None when no
instance pushed that key, the bare value when exactly one did (the same answer as for an unmapped
task), else a list in map-index order *without the indexes* (so every record names its product:
:func:`~airflow_provider_cogvideo.manifest.subject`). Passing ``map_indexes=None`` is not the same:
it asks for map index -1, the unmapped task's, and finds nothing of a mapped one. A loop of one pull
per map index, what the example DAG did before, made N requests. (The unit tests run the installed
SDK's ``xcom_pull`` against these readings. The bare single value is why every value read here is a
mapping or an unmapped task's list: a mapped task's list values could not be told from several.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import BaseOperator

from airflow_provider_cogvideo.errors import CogVideoValidationError
from airflow_provider_cogvideo.extras import require_extra_for_operator
from airflow_provider_cogvideo.manifest import RowStatus, budget_refusal, build_manifest, summary_line
from airflow_provider_cogvideo.operators.gallery import (
    DEFAULT_URL_EXPIRES,
    checked_media,
    checked_url_expires,
    write_gallery,
    write_manifest,
)
from airflow_provider_cogvideo.operators.s3_hook import S3HookMixin
from airflow_provider_cogvideo.review import checked_mode
from airflow_provider_cogvideo.s3 import checked_key, checked_key_template, s3_uri
from airflow_provider_cogvideo.validation import as_bool, is_unset
from airflow_provider_cogvideo.video_index import (
    DEFAULT_VARIANT,
    Hold,
    IndexLocation,
    clear_hold,
    compact,
    iso_utc,
    write_hold,
)
from airflow_provider_cogvideo.xcom import (
    DRY_RUN_STATUS,
    XCOM_CATALOG,
    XCOM_ERROR,
    XCOM_ESTIMATE,
    XCOM_READS,
    XCOM_REJECTED,
    XCOM_SPEND,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

RETURN_KEY = "return_value"
"""A task's return value's XCom key (Airflow's ``XCOM_RETURN_KEY``)."""


def all_values(pulled: Any) -> list[Any]:
    """What one ``xcom_pull`` without ``map_indexes`` returned, as the list of values it stands for:
    None (nothing pushed) is none, a mapping is the one instance's value, a list is every instance's
    (or an unmapped task's list value: the same reading)."""
    if pulled is None:
        return []
    if isinstance(pulled, Mapping):
        return [pulled]
    return list(pulled) if isinstance(pulled, (list, tuple)) else []


class CogVideoRunRecordOperator(S3HookMixin, BaseOperator):
    """Write a pipeline run's manifest and gallery page, hold its ambiguous products and compact its video
    index (see the module docstring). Runs whatever happened upstream (``trigger_rule`` defaults to
    ``all_done``) and returns ``manifest`` (its ``s3://`` URI), ``gallery_url`` (the page's logged
    address) and the count of every status.

    :param s3_bucket: bucket of the manifest and the gallery page.
    :param manifest_key: key of the manifest JSON, e.g. ``manifests/{{ ds }}/{{ run_id }}.json``
        (:data:`~airflow_provider_cogvideo.s3.KEY_RULES`; the text outside Jinja is checked when the
        operator is built).
    :param gallery_key: key of the gallery page, e.g. ``gallery/{{ ds }}/{{ run_id }}.html``.
    :param ingest_task_id: the ingestion task: its return value (the items to pay for) and its XComs
        ``catalog`` (reused, held and waiting rows), ``rejected`` (refused images) and ``catalog_reads``.
    :param plan_task_id: the run plan task: its XCom ``estimate`` (price, budget, whether it refused the run).
    :param generate_task_id: the mapped generate task: its results (a dry run's are the planned rows),
        XComs ``error`` and ``spend`` (what each submit paid).
    :param upload_task_id: the mapped upload task: its results (the stored video, and the ``index_entry``
        it wrote) and XCom ``error``.
    :param video_index: ``s3://bucket/prefix/`` of the run's video index
        (:mod:`~airflow_provider_cogvideo.video_index`), or unset for none: ambiguous products are held
        there, uploaded or reused ones released, and the index compacted.
    :param dry_run: the run is a dry run (``"{{ params.dry_run }}"``): the manifest is a plan of what the
        run would cost. A run whose generate tasks returned dry-run results is one whatever this says.
    :type dry_run: bool | str
    :param media: how the gallery page reaches its media, ``"presigned"`` or ``"relative"``
        (:class:`~airflow_provider_cogvideo.operators.gallery.S3VideoGalleryOperator`'s ``media``).
    :param url_expires: validity of the gallery's presigned URLs (seconds or a ``timedelta``), 1 s to 7 days.
    :param review: what happens to the run's new videos, recorded in the manifest (``review.mode``) and
        the outlet events for the review DAG: ``required`` (each waits for a reviewer), ``publish_all`` or
        ``off`` (:class:`~airflow_provider_cogvideo.review.ReviewMode`); unset: no review loop.
    :param aws_conn_id: ``aws`` connection for ``S3Hook``.

    Needs the ``amazon`` extra: without it the constructor raises ``CogVideoMissingExtraError``, so
    the DAG fails when it is parsed.
    """

    template_fields: Sequence[str] = ("s3_bucket", "manifest_key", "gallery_key", "video_index", "dry_run", "review")
    ui_color = "#e8f0ff"

    def __init__(
        self,
        *,
        s3_bucket: str,
        manifest_key: str,
        gallery_key: str,
        ingest_task_id: str = "ingest",
        plan_task_id: str = "plan",
        generate_task_id: str = "product.generate",
        upload_task_id: str = "product.upload",
        video_index: str | None = None,
        dry_run: bool | str = False,
        media: str = "presigned",
        url_expires: float | timedelta = DEFAULT_URL_EXPIRES,
        review: str | None = None,
        aws_conn_id: str | None = "aws_default",
        **kwargs: Any,
    ) -> None:
        require_extra_for_operator(type(self), kwargs.get("task_id"), "amazon")
        kwargs.setdefault("trigger_rule", "all_done")  # a run whose products failed needs its record most
        super().__init__(**kwargs)
        self.s3_bucket = s3_bucket
        self.manifest_key = checked_key_template(manifest_key, "manifest_key", placeholders=False)
        self.gallery_key = checked_key_template(gallery_key, "gallery_key", placeholders=False)
        self.ingest_task_id = ingest_task_id
        self.plan_task_id = plan_task_id
        self.generate_task_id = generate_task_id
        self.upload_task_id = upload_task_id
        self.video_index = video_index
        self.dry_run = dry_run
        self.media = checked_media(media)
        self.url_expires = checked_url_expires(url_expires)
        self.review = review
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        try:  # rendered values: refused before anything is written
            manifest_key = checked_key(self.manifest_key, "manifest_key")
            gallery_key = checked_key(self.gallery_key, "gallery_key")
            location = None if is_unset(self.video_index) else IndexLocation.parse(self.video_index, "video_index")
            dry_run = as_bool("dry_run", self.dry_run)
            review = None if is_unset(self.review) else checked_mode(self.review)
        except CogVideoValidationError as exc:
            raise AirflowFailException(str(exc)) from None
        pulled = self._pull(context["ti"])
        planned = [r for r in pulled["generated"] if r.get("task_status") == DRY_RUN_STATUS]
        document = build_manifest(
            run_id=context.get("run_id"),
            gallery=s3_uri(self.s3_bucket, gallery_key),
            plan=dry_run or bool(planned),
            elapsed_seconds=self._elapsed(context),
            items=pulled["items"],
            uploads=pulled["uploads"],
            planned=planned,
            errors=[*pulled["upload_errors"], *pulled["generate_errors"]],  # the upload's is the later step's
            catalog=pulled["catalog"],
            refused=pulled["refused"],
            estimate=pulled["estimate"],
            spend=pulled["spend"],
            reads=pulled["reads"],
        )
        document["video_index"] = location.uri if location is not None else None
        document["review"] = {"mode": review.value} if review is not None else None
        manifest_uri = write_manifest(self.s3_hook.get_conn(), self.s3_bucket, manifest_key, document)
        gallery = write_gallery(
            document,
            s3_bucket=self.s3_bucket,
            s3_key=gallery_key,
            media=self.media,
            url_expires=self.url_expires,
            log=self.log,
            s3_hook=self.s3_hook,
        )
        self.log.info("%s; manifest %s", summary_line(document), manifest_uri)
        if location is not None and not document["plan"]:
            self._update_index(location, document, pulled["uploads"], run_id=str(context.get("run_id")))
        self._announce(context, manifest_uri, document)
        refusal = budget_refusal(document, pulled["estimate"])
        if refusal:
            raise AirflowFailException(f"{refusal}; manifest {manifest_uri}")
        return {**document["counts"], "manifest": manifest_uri, "gallery_url": gallery["url"]}

    def _announce(self, context: Context, manifest_uri: str, document: Mapping[str, Any]) -> None:
        """The run's asset events say where its record is (module docstring, step 5)."""
        events = context.get("outlet_events")
        if events is None:
            return
        extra = {
            "manifest": manifest_uri,
            "gallery": document["gallery"],
            "review": (document["review"] or {}).get("mode"),
        }
        for outlet in self.outlets:
            events[outlet].extra = dict(extra)

    def _pull(self, ti: Any) -> dict[str, Any]:
        """Every XCom the record reads: one pull per (task, key), never one per product (module docstring)."""

        def pull(task_id: str, key: str) -> list[Any]:
            return [v for v in all_values(ti.xcom_pull(task_ids=task_id, key=key)) if isinstance(v, Mapping)]

        estimates = pull(self.plan_task_id, XCOM_ESTIMATE)
        reads = pull(self.ingest_task_id, XCOM_READS)
        return {
            "items": pull(self.ingest_task_id, RETURN_KEY),
            "catalog": pull(self.ingest_task_id, XCOM_CATALOG),
            "refused": pull(self.ingest_task_id, XCOM_REJECTED),
            "reads": reads[0] if reads else None,
            "estimate": estimates[0] if estimates else None,
            "generated": pull(self.generate_task_id, RETURN_KEY),
            "generate_errors": pull(self.generate_task_id, XCOM_ERROR),
            "spend": pull(self.generate_task_id, XCOM_SPEND),
            "uploads": pull(self.upload_task_id, RETURN_KEY),
            "upload_errors": pull(self.upload_task_id, XCOM_ERROR),
        }

    @staticmethod
    def _elapsed(context: Context) -> float | None:
        dag_run = context.get("dag_run")
        started = getattr(dag_run, "start_date", None)
        if not isinstance(started, datetime):
            return None
        return round((datetime.now(timezone.utc) - started).total_seconds(), 1)

    def _update_index(
        self, location: IndexLocation, document: Mapping[str, Any], uploads: Iterable[Mapping[str, Any]], *, run_id: str
    ) -> None:
        """Holds, compaction, releases (module docstring, step 4). Every step is idempotent: a retry of
        this task writes the same holds and the same document again."""
        client = self.s3_hook.get_conn()
        rows = [row for row in document["products"] if row.get("product_id") is not None]
        now = iso_utc(datetime.now(timezone.utc))
        ambiguous = [row for row in rows if row.get("status") == RowStatus.AMBIGUOUS]
        for row in ambiguous:
            error = row.get("error") if isinstance(row.get("error"), Mapping) else {}
            write_hold(
                client,
                location,
                Hold(
                    product_id=str(row["product_id"]),
                    variant=str(row.get("variant") or DEFAULT_VARIANT),
                    request_id=None if row.get("request_id") is None else str(row["request_id"]),
                    run_id=run_id,
                    at=now,
                    fingerprint=row.get("fingerprint"),
                    reason=error.get("error"),
                ),
            )
        known = [
            (entry["key"], entry["etag"], entry["body"])
            for upload in uploads
            if isinstance(entry := upload.get("index_entry"), Mapping) and {"key", "etag", "body"} <= entry.keys()
        ]
        index = compact(client, location, known=known)
        released = [
            (str(row["product_id"]), str(row.get("variant") or DEFAULT_VARIANT))
            for row in rows
            if row.get("status") in (RowStatus.UPLOADED, RowStatus.REUSED)  # held ones are neither: released
        ]
        released = [subject for subject in released if index.held(*subject) is not None]
        for product_id, variant in released:
            clear_hold(client, location, product_id, variant)
        self.log.info(
            "Video index %s: %d product(s) held, %d released, %d entry(ies) of this run compacted; S3 requests: %s",
            location.uri,
            len(ambiguous),
            len(released),
            len(known),
            dict(index.requests),
        )


__all__ = ["CogVideoRunRecordOperator", "all_values"]
