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
built from an allow-list.

Everything is read from what the task's process already holds (the operator's rendered arguments,
the trigger event a deferred task resumed with, the transfer's own record of what it wrote): the
OpenLineage provider calls the operators from a forked child of the task, where asking the
supervisor for XCom can hang (dag.test()'s in-process supervisor does not survive the fork).
"""

from __future__ import annotations

import functools
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_cogvideo.redact import authority, is_http_url
from airflow_provider_cogvideo.s3 import parse_s3_uri

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
    """The dataset an image or file reference names: ``s3://`` URI (credentials dropped), http(s) URL
    (scheme, host, port and path; query, fragment and credentials dropped) or absolute local path;
    None otherwise."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if ref.startswith("s3://"):
        parsed = parse_s3_uri(ref)  # credentials dropped
        return s3_dataset(*parsed) if parsed else None
    if is_http_url(ref):
        try:
            parts = urlsplit(ref)
            host, port = parts.hostname, parts.port
        except ValueError:
            return None
        if not host:
            return None
        return Dataset(namespace=f"{parts.scheme}://{authority(host, port)}", name=parts.path or "/")
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


def image_refs(images: Any) -> list[Any]:
    """An operator's ``image`` argument (one reference or a list) as a list of references, local paths
    made absolute (as a dataset names them); data URIs and base64 stay as they are (no dataset)."""
    refs = [images] if isinstance(images, str) else list(images) if isinstance(images, (list, tuple)) else []
    return [_absolute_if_file(ref) for ref in refs]


def _absolute_if_file(ref: Any) -> Any:
    if not isinstance(ref, str) or is_http_url(ref) or ref.startswith(("s3://", "data:")) or len(ref) >= 4096:
        return ref
    try:
        path = Path(ref.strip()).expanduser()
        return str(path.resolve()) if path.is_file() else ref
    except (OSError, ValueError):
        return ref


def _resumed_event(task_instance: Any) -> Mapping[str, Any] | None:
    """The trigger event a deferred task resumed with (the Task SDK keeps it on the task instance
    it was started with), or None for a task that did not defer."""
    context = getattr(task_instance, "_ti_context_from_server", None)
    if context is None or not getattr(context, "next_method", None):
        return None
    kwargs = getattr(context, "next_kwargs", None) or {}
    try:
        from airflow.sdk.serde import deserialize

        kwargs = deserialize(kwargs)
    except Exception:  # not serde's form: the plain dict it was sent as
        pass
    event = kwargs.get("event") if isinstance(kwargs, Mapping) else None
    return event if isinstance(event, Mapping) else None


def _options(operator: Any, model: str | None) -> dict[str, Any]:
    """The operator's rendered video options, typed as the request model reads them when it can."""
    from airflow_provider_cogvideo.models import VideoGenerationRequest
    from airflow_provider_cogvideo.validation import rendered_none

    raw = {name: rendered_none(getattr(operator, name, None)) for name in JOB_OPTIONS}
    raw = {name: value for name, value in raw.items() if value is not None}
    try:
        typed = VideoGenerationRequest.model_validate(
            {
                **raw,
                "model": model,
                "prompt": "-",  # only the options are read; a request needs a prompt or an image
                "capability_overrides": getattr(operator, "capability_overrides", None),
            }
        )
        return {name: getattr(typed, name) for name in raw}
    except Exception:  # invalid options failed the task already; report them as given
        return {name: v if isinstance(v, (str, int, float, bool)) else str(v) for name, v in raw.items()}


def generation_lineage(operator: Any, task_instance: Any) -> OperatorLineage:
    """The generate task's lineage, from what its process holds: the rendered arguments (images,
    model, options), the trigger event it resumed with (job id, status, video and cover URLs) or the
    job it waited for on the worker, and the list price from the connection it already read.

    Nothing is asked of Airflow (no XCom, no connection, no metadata DB): the OpenLineage provider
    calls this in a forked child, where a deferred task's supervisor (dag.test()'s in-process one)
    cannot answer, and lineage must never hold a task up. Inputs: the images (``s3://``, http(s) or
    file datasets); outputs: the rendered video and cover (http(s), no signature); run facet
    ``cogvideo_job``. A retry that returns a finished job kept from an earlier try reports no job id."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_cogvideo.models import TaskResult
    from airflow_provider_cogvideo.validation import as_bool, rendered_none
    from airflow_provider_cogvideo.xcom import DRY_RUN_STATUS

    model = rendered_none(getattr(operator, "model", None))
    result: dict[str, Any] = {"model": model, "request_id": rendered_none(getattr(operator, "request_id", None))}
    event = _resumed_event(task_instance)
    if event is not None:
        result["id"] = event.get("job_id")
        if isinstance(event.get("result"), Mapping):
            try:
                job = TaskResult.model_validate(event["result"])
            except Exception:
                job = None
            if job is not None:
                result.update(
                    id=job.id or result["id"],
                    model=job.model or model,
                    request_id=job.request_id or result["request_id"],
                    task_status=job.task_status,
                    video_url=job.video_url,
                    cover_image_url=job.cover_image_url,
                )
    elif getattr(operator, "_job_id", None):
        result["id"] = operator._job_id
    else:
        try:
            if as_bool("dry_run", getattr(operator, "dry_run", False)):
                result["task_status"] = DRY_RUN_STATUS
        except Exception:
            pass
    hook = vars(operator).get("hook")  # the cached hook: its settings were read while the task ran
    if hook is not None and getattr(hook, "_settings", None) is not None:
        result["price"], result["price_currency"] = hook.price_of(result["model"])
    request = {"model": result["model"], **_options(operator, result["model"])}
    return OperatorLineage(
        inputs=datasets(image_refs(getattr(operator, "image", None))),
        outputs=datasets([result.get("video_url"), result.get("cover_image_url")]),
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
