"""S3HookMixin: the ``S3Hook`` of an operator that reads or writes S3, made once per task instance
from its rendered ``aws_conn_id``, and imported only when first used (the ``amazon`` extra, which the
operators check for when they are built)."""

from __future__ import annotations

from functools import cached_property
from typing import Any


class S3HookMixin:
    """``s3_hook`` for an operator with an ``aws_conn_id`` attribute."""

    aws_conn_id: str | None

    @cached_property
    def s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)


__all__ = ["S3HookMixin"]
