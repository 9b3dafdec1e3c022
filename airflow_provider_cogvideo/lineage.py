"""OpenLineage: the datasets and the run facet this provider's operators report.

Read only by the operators' ``get_openlineage_facets_on_complete``, which the OpenLineage provider
(``apache-airflow-providers-openlineage``, optional) calls when a task ends; everything OpenLineage is
imported inside the functions, so this module imports without it.

Naming follows OpenLineage's spec and the Amazon provider's S3 operators:

==========================  ===============================  ==============================
dataset                     namespace                        name
==========================  ===============================  ==============================
``s3://bucket/key``         ``s3://bucket``                  ``key``
``https://host:port/path``  ``https://host:port``            ``/path`` (no query: signatures
                                                             never leave the task)
a local path                ``file``                         the absolute path
==========================  ===============================  ==============================

Images given inline (a data URI, base64) are no dataset. The generate task's job is described by
the run facet ``cogvideo_job`` (:func:`job_facet`): job id, request id, model, status, the video
options and the list price. Never a prompt, a ``user_id``, ``extra_body`` or a key: the facet is
built from an allow-list of the request summary, which itself holds no secret.
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_cogvideo.common import XCOM_JOB_ID, XCOM_REQUEST

if TYPE_CHECKING:
    from airflow.providers.common.compat.openlineage.facet import Dataset, RunFacet
    from airflow.providers.openlineage.extractors import OperatorLineage

JOB_FACET = "cogvideo_job"
"""Key of the run facet that describes a generation job."""
JOB_OPTIONS = (
    "quality",
    "with_audio",
    "watermark_enabled",
    "size",
    "fps",
    "duration",
    "aspect_ratio",
    "style",
    "movement_amplitude",
)
"""The request fields reported as the job's options (an allow-list: nothing else of the body goes)."""


def s3_dataset(bucket: str, key: str) -> Dataset:
    """An S3 object as OpenLineage names it: namespace ``s3://bucket``, name the key."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    return Dataset(namespace=f"s3://{bucket}", name=key or "/")


def dataset_for(ref: Any) -> Dataset | None:
    """The dataset an image or file reference names: ``s3://`` URI, http(s) URL (scheme, host, port
    and path; query, fragment and credentials dropped) or absolute local path; None otherwise."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if ref.startswith("s3://"):
        bucket, _, key = ref.removeprefix("s3://").partition("/")
        return s3_dataset(bucket, key) if bucket else None
    if ref.startswith(("http://", "https://")):
        try:
            parts = urlsplit(ref)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        if not host:
            return None
        host = f"[{host}]" if ":" in host else host
        authority = f"{host}:{port}" if port else host
        return Dataset(namespace=f"{parts.scheme}://{authority}", name=parts.path or "/")
    if ref.startswith("/") and "\n" not in ref:
        return Dataset(namespace="file", name=posixpath.normpath(ref))
    return None


def datasets(refs: Iterable[Any]) -> list[Dataset]:
    """:func:`dataset_for` of each reference, unnamed ones left out, each dataset once."""
    found: dict[tuple[str, str], Dataset] = {}
    for ref in refs:
        dataset = dataset_for(ref)
        if dataset is not None:
            found.setdefault((dataset.namespace, dataset.name), dataset)
    return list(found.values())


@functools.cache
def _job_facet_class() -> type[RunFacet]:
    """``CogVideoJobRunFacet``, defined on first use: its base class is OpenLineage's (optional)."""
    from airflow.providers.common.compat.openlineage.facet import RunFacet
    from attrs import define

    @define
    class CogVideoJobRunFacet(RunFacet):
        """A CogVideoX/Vidu generation job: what was asked for and what it costs (list price)."""

        jobId: str | None  # OpenLineage facets are camelCase
        requestId: str | None
        model: str | None
        taskStatus: str | None
        options: dict[str, Any]
        price: float | None
        priceCurrency: str | None

        _additional_skip_redact = ["jobId", "requestId", "model", "taskStatus", "price", "priceCurrency"]

    CogVideoJobRunFacet.__module__ = __name__
    CogVideoJobRunFacet.__qualname__ = "CogVideoJobRunFacet"
    globals()["CogVideoJobRunFacet"] = CogVideoJobRunFacet  # so it pickles and reprs by name
    return CogVideoJobRunFacet


def job_facet(result: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> RunFacet:
    """The ``cogvideo_job`` run facet from the generate task's result and request summary."""
    result = result or {}
    request = request or result.get("request") or {}
    options = {name: request[name] for name in JOB_OPTIONS if isinstance(request.get(name), (str, int, float, bool))}
    price = result.get("price")
    return _job_facet_class()(
        jobId=_text(result.get("id")),
        requestId=_text(result.get("request_id") or request.get("request_id")),
        model=_text(result.get("model") or request.get("model")),
        taskStatus=_text(result.get("task_status")),
        options=options,
        price=float(price) if isinstance(price, (int, float)) else None,
        priceCurrency=_text(result.get("price_currency")),
    )


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def image_refs(request: Mapping[str, Any] | None) -> list[Any]:
    """Where the request's images came from (the summary names them: ``s3://``, URL, path)."""
    images = (request or {}).get("image_url")
    if images is None:
        return []
    return [images] if isinstance(images, str) else list(images) if isinstance(images, list) else []


def _pull(task_instance: Any, key: str) -> Any:
    try:
        return task_instance.xcom_pull(task_ids=task_instance.task_id, key=key, map_indexes=task_instance.map_index)
    except Exception:  # lineage never fails a task; a missing value is reported as missing
        return None


def generation_lineage(task_instance: Any) -> OperatorLineage:
    """The generate task's lineage, from what it left in XCom (a deferred task resumes in another
    process: only XCom holds what its first half did). Inputs: the images (``s3://``, http(s) or
    file datasets); outputs: the rendered video and cover (http(s) datasets, no signature); run facet
    ``cogvideo_job``."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    result = _pull(task_instance, "return_value")
    result = result if isinstance(result, Mapping) else None
    request = (result or {}).get("request") or _pull(task_instance, XCOM_REQUEST)
    request = request if isinstance(request, Mapping) else None
    if result is None:
        job_id = _pull(task_instance, XCOM_JOB_ID)
        result = {"id": job_id} if job_id else None
    outputs = datasets([(result or {}).get("video_url"), (result or {}).get("cover_image_url")])
    return OperatorLineage(
        inputs=datasets(image_refs(request)),
        outputs=outputs,
        run_facets={JOB_FACET: job_facet(result, request)},
    )


def transfer_lineage(inputs: Iterable[Any], outputs: Iterable[Any]) -> OperatorLineage:
    """The transfer's lineage: the result files downloaded (http(s), no signature) → the S3 objects."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs))


__all__ = [
    "JOB_FACET",
    "JOB_OPTIONS",
    "dataset_for",
    "datasets",
    "generation_lineage",
    "image_refs",
    "job_facet",
    "s3_dataset",
    "transfer_lineage",
]
