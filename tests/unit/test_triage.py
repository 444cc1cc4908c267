"""The review queue's order: a decision's severity first, then the margin over each model's own threshold."""

from __future__ import annotations

from serve.store.review import triage


def verdict(decision: str, **scores: tuple[float, float]) -> dict:
    """`modality=(score, its model's review threshold)`."""
    return {"decision": decision, **{m: {"score": s} for m, (s, _) in scores.items()},
            "models": [{"modality": m, "thresholds": {"review": t, "likely_fake": t + 0.2}} for m, (_, t) in scores.items()]}


def test_a_likely_fake_photo_comes_before_a_voice_under_review_with_a_higher_raw_score():
    photo = verdict("likely_fake", visual=(0.589, 0.544))
    voice = verdict("review", audio=(0.658, 0.605))
    assert triage(photo) > triage(voice)


def test_within_a_decision_the_larger_margin_over_its_own_threshold_comes_first():
    voice = verdict("review", audio=(0.70, 0.65))  # 0.05 over
    face = verdict("review", visual=(0.60, 0.50))  # 0.10 over, with the lower score
    both = verdict("review", visual=(0.52, 0.50), audio=(0.75, 0.65))  # its most suspicious model: 0.10 over
    assert triage(face) > triage(voice) and abs(triage(both) - triage(face)) < 1e-9


def test_a_lease_lasts_long_enough_to_watch_the_media(tmp_path):
    import time

    from serve.store import Store
    from serve.store.review import media_seconds

    long_voice = {"decision": "review", "score": 0.7, "audio": {"score": 0.7, "segments": [{"start": 0, "end": 4, "score": 0.7},
                                                                            {"start": 86, "end": 90, "score": None}]}}
    assert media_seconds(long_voice) == 90 and media_seconds({"decision": "review"}) == 0  # a photo
    store = Store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    store.migrate()
    for n, verdict in enumerate([long_voice, {"decision": "review", "score": 0.5}]):
        (up, _) = store.uploads.add(f"{n:064x}", 1, "audio", None, {}, None, None, "t")
        (job,), _ = store.uploads.claim("engine", 1, lease_s=60, max_attempts=2)
        assert store.uploads.finish(job["id"], "engine", verdict, None, ["review"])
    leases = []
    while item := store.review.claim("alice", lease_s=300, per_media_s=2.0):
        leases.append(item["lease_until"] - time.time())
    assert sorted(round(s / 10) * 10 for s in leases) == [300, 480]  # 300 s, and 300 + 2 x 90 s of audio
