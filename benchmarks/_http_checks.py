"""Response check for ``HttpEventTrigger`` in ``trigger_scale.py`` (not a benchmark itself).

HttpEventTrigger imports this module by path and *reloads* it before every poll, so the counter
survives reloads by reading itself back from the module's globals.
"""

from __future__ import annotations

import json
from typing import Any

COUNTS: dict[str, int] = globals().get("COUNTS") or {"polls": 0}


async def cogvideo_done(response: Any) -> bool:
    """True once the job reached a terminal status (the poll is counted either way)."""
    COUNTS["polls"] += 1
    return json.loads(response.content).get("task_status") in ("SUCCESS", "FAIL")
