"""Harness that only this repository's own tests and benchmarks use: a throwaway PostgreSQL server
(:mod:`.postgres`), a Redis server (:mod:`.redis_server`) and the Celery deployment on one machine
(:mod:`.distributed`), for ``tests/integration/test_distributed.py`` and
``benchmarks/tier_throughput.py``.

Not part of the wheel: what users run (the emulator, the pytest plugin, ``cogvideo demo`` and the
harness the demo needs) stays in :mod:`airflow_provider_cogvideo.testing`.
"""
