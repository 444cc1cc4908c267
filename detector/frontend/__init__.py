"""The front end: what is read from an upload (probe, frames, faces and tracks, voiced audio, C2PA)."""
