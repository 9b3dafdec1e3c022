"""A reviewer, scripted: answers the review DAG's required actions through Airflow's public REST API,
as a person's client would. The demo and the tests use it; its calls are the ones docs/review.md shows.

* a token from the api-server: ``POST /auth/token`` with a username and password (SimpleAuthManager's
  users), or ``GET /auth/token`` when ``simple_auth_manager_all_admins`` makes everyone an admin;
* the waiting reviews of a run, ``GET /api/v2/dags/{dag_id}/dagRuns/{run_id}/hitlDetails?response_received=false``;
* an answer, ``PATCH /api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/hitlDetails``
  with ``{"chosen_options": [...], "params_input": {"note": ...}}``.

Standard library only (urllib): a tool, never imported by the provider's runtime modules.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode


@dataclass(frozen=True)
class WaitingReview:
    """One required action: the task instance that waits, and what the reviewer reads."""

    run_id: str
    task_id: str
    map_index: int
    label: str | None
    subject: str
    body: str | None


class Reviewer:
    """A scripted reviewer of one api-server (module docstring)."""

    def __init__(
        self, api_url: str, *, username: str | None = None, password: str | None = None, timeout: float = 30.0
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._login = {"username": username, "password": password} if username else None
        self._token: str | None = None

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        if self._token is None and not path.startswith("/auth/"):
            login = (
                self._request("POST", "/auth/token", self._login)
                if self._login
                else self._request("GET", "/auth/token")
            )
            self._token = login["access_token"]
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"{self.api_url}{path}", data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode(errors="replace")
            raise RuntimeError(f"{method} {path}: HTTP {exc.code}: {detail}") from None

    def waiting(self, dag_id: str, run_id: str = "~") -> list[WaitingReview]:
        """The reviews of ``run_id`` (``~``: every run) nobody has answered."""
        query = urlencode({"response_received": "false", "limit": 1000})
        path = f"/api/v2/dags/{quote(dag_id, safe='~')}/dagRuns/{quote(run_id, safe='~')}/hitlDetails?{query}"
        found = []
        for detail in self._request("GET", path).get("hitl_details", []):
            ti = detail["task_instance"]
            found.append(
                WaitingReview(
                    run_id=ti["dag_run_id"],
                    task_id=ti["task_id"],
                    map_index=int(ti["map_index"]),
                    label=ti.get("rendered_map_index"),
                    subject=detail["subject"],
                    body=detail.get("body"),
                )
            )
        return found

    def wait_for(
        self, dag_id: str, count: int, *, task_id: str | None = None, timeout: float = 300.0
    ) -> list[WaitingReview]:
        """At least ``count`` waiting reviews (of ``task_id``, when given); RuntimeError after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.waiting(dag_id) if task_id is None or r.task_id == task_id]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(found)} review(s) of {dag_id} waiting after {timeout:g} s, wanted {count}")
            time.sleep(1.0)

    def answer(self, dag_id: str, review: WaitingReview, option: str, note: str | None = None) -> Any:
        """Answer one review (``Approve`` or ``Reject``, with a note)."""
        path = (
            f"/api/v2/dags/{quote(dag_id, safe='')}/dagRuns/{quote(review.run_id, safe='')}/taskInstances/"
            f"{quote(review.task_id, safe='')}/{review.map_index}/hitlDetails"
        )
        params = {"note": note} if note is not None else {}
        return self._request("PATCH", path, {"chosen_options": [option], "params_input": params})


__all__ = ["Reviewer", "WaitingReview"]
