"""deepfake-detector: find manipulated faces and voices in uploads.

    from detector import Scorer

    scorer = Scorer()  # the starter models shipped in the package; Scorer(visual=PATH, audio=None) ...
    # uploads are read in worker processes: in a script, call this under `if __name__ == "__main__":`
    for verdict in scorer.score_many(["clip.mp4", "voice_note.flac"]):  # Verdicts or ErrorRecords
        print(verdict.path, verdict.decision, verdict.score)
    verdict = scorer.score(open("photo.jpg", "rb").read())  # bytes, or an (H, W, 3) uint8 RGB array
"""

_API = ("Scorer", "Verdict", "ErrorRecord")


def __getattr__(name: str):
    """Loaded on first use, so `deepfake-detect --version` does not import torch."""
    if name in _API:
        from detector.scoring import scorer

        return getattr(scorer, name)
    raise AttributeError(f"module 'detector' has no attribute {name!r}")
