"""Celery workers: task routing and tasks around the pipeline."""
