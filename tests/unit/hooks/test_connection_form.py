"""The connection form, as Airflow's UI API serves it, on every supported Airflow: 3.2+ reads the
declarative conn-fields, 3.1 the hook's widgets built from them. Every extra the hook reads is there."""

from __future__ import annotations

import importlib.util
import sys

import airflow
import pytest

from airflow_provider_cogvideo import NUMBER_EXTRAS, RESEND_SUBMIT_ON_5XX
from airflow_provider_cogvideo.hooks.connection import KNOWN_EXTRAS


@pytest.fixture(scope="module")
def form() -> dict:
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == "cogvideo"]
    return meta.extra_fields or {}


def test_every_extra_the_hook_reads_has_a_described_field(form: dict) -> None:
    assert set(form) == set(KNOWN_EXTRAS), f"Airflow {airflow.__version__}"
    for name, field in form.items():
        assert field.get("description"), f"{name} has no description on Airflow {airflow.__version__}"


# Without wtforms installed, Airflow 3.1 builds the form from its own stand-ins for wtforms, and
# patches wtforms.validators.any_of through mock.patch: on Python 3.10 that lands on an attribute of
# the stand-in package, not on the stand-in module that ``from wtforms.validators import any_of``
# reads, so no provider's choices reach the form there (Airflow's limitation; 3.11+ resolves both
# to the module). Fields and descriptions still do (the test above).
@pytest.mark.skipif(
    sys.version_info < (3, 11)
    and airflow.__version__.startswith("3.1.")
    and importlib.util.find_spec("wtforms") is None,
    reason="Airflow 3.1's wtforms stand-ins lose any_of/Optional on Python 3.10 (mock.patch resolution)",
)
def test_choices_and_types_reach_the_form(form: dict) -> None:
    assert [v for v in form["tier"]["schema"]["enum"] if v] == ["V0", "V1", "V2", "V3"]
    assert [v for v in form["auth"]["schema"]["enum"] if v] == ["api_key", "jwt"]
    assert "integer" in form["max_retries"]["schema"]["type"]
    assert "boolean" in form[RESEND_SUBMIT_ON_5XX]["schema"]["type"]
    for name, extra in NUMBER_EXTRAS.items():
        assert f"{extra.text(extra.minimum)} to {extra.text(extra.maximum)}" in form[name]["description"], name
