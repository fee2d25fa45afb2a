"""Scheduling: policies on django-celery-beat, RPO catch-up and the job reconciler.

Map: `cron` (tick arithmetic) → `sync` (Policy ⇄ PeriodicTask) → `tasks` (beat entry points)
→ `fanout` / `rpo` / `reconciler` (what each run does) → `backups.services` / `backups.jobs` (state, publish).
Time comes from `clock` so tests can inject it. See docs/scheduling.md.
"""
