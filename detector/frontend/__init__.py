"""The front end: what is read from an upload (probe, frames, faces and tracks, voiced audio, C2PA)."""

from multiprocessing import forkserver

WORKER_PRELOAD = ["detector.frontend.scan"]  # what the scan workers' forkserver imports once


def start_forkserver() -> None:
    """Start the scan workers' forkserver now, so that it imports torch while this process loads the models."""
    forkserver.set_forkserver_preload(WORKER_PRELOAD)
    forkserver.ensure_running()
