"""``make bench`` (issue #8): API calls, wall time and memory of the sync against a lower bound and a
naive baseline, on a seeded sandbox with injected latency.

Modules: ``config`` (CLI), ``sandbox`` (subprocess, seeding, stats), ``engine`` (drives the sync like
the DAG), ``bounds`` (the lower bound), ``edits`` (the 1% edits), ``baseline`` (the naive sync),
``sampler`` (peak RSS), ``memory`` (the streaming check), ``scenarios`` (measured runs), ``targets``
(PASS/MISS), ``report`` (tables, JSON) and ``runner`` (the whole benchmark).
"""
