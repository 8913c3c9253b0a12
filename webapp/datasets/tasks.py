"""Celery tasks of the datasets app: take an id, call one function."""

from celery import shared_task

from webapp.datasets.labels import TASK, execute_scan


@shared_task(name=TASK, acks_late=True, ignore_result=True)
def find_labels(scan_id: int) -> None:
    execute_scan(scan_id)
