"""What the provider's operators, sensor and transfer inherit: the hook, built once per task instance.

Like the Amazon provider's ``AwsBaseHookMixin``: a task builds its hook when it first needs one (not
when the DAG file is parsed, which must not read a connection), from ``cogvideo_conn_id`` as rendered:
unset (:func:`~airflow_provider_cogvideo.validation.is_unset`) is the default connection.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow_provider_cogvideo import DEFAULT_CONN_ID
from airflow_provider_cogvideo.validation import rendered_none

if TYPE_CHECKING:
    from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook


class CogVideoHookMixin:
    """One lazily built hook per task instance, for the operators, the sensor and the transfer."""

    cogvideo_conn_id: str = DEFAULT_CONN_ID

    @cached_property
    def hook(self) -> CogVideoHook:
        from airflow_provider_cogvideo.hooks.cogvideo import CogVideoHook

        return CogVideoHook(rendered_none(self.cogvideo_conn_id) or DEFAULT_CONN_ID)


__all__ = ["CogVideoHookMixin"]
