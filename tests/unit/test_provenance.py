"""C2PA manifests read as evidence: signed fixtures built in code with a throwaway CA, no network."""

from __future__ import annotations

import pytest

from detector import samples
from detector.frontend.provenance import ProvenancePolicy, read_provenance


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    d = tmp_path_factory.mktemp("c2pa")
    identity = samples.test_signer()
    samples.write_image(d / "photo.jpg", samples.astronaut())
    samples.write_video(d / "clip.mp4", samples.moving_crop(samples.astronaut(), 8))
    samples.write_audio(d / "voice.wav", samples.chirp(1.0))
    files = {
        "ai.jpg": samples.sign_c2pa(d / "photo.jpg", d / "ai.jpg", "image/jpeg", identity),
        "camera.mp4": samples.sign_c2pa(d / "clip.mp4", d / "camera.mp4", "video/mp4", identity, ai_generated=False),
        "tts.wav": samples.sign_c2pa(d / "voice.wav", d / "tts.wav", "audio/wav", identity),
        "photo.jpg": d / "photo.jpg",
    }
    tampered = bytearray(files["ai.jpg"].read_bytes())
    tampered[-2000] ^= 0xFF  # one pixel byte: the manifest's hash of the image no longer matches
    (d / "tampered.jpg").write_bytes(tampered)
    files["tampered.jpg"] = d / "tampered.jpg"
    (d / "ca.pem").write_bytes(identity[2])
    return files, d / "ca.pem"


def test_a_signed_ai_image_declares_itself(signed):
    files, _ = signed
    p = read_provenance(files["ai.jpg"])
    assert p.state == "valid" and p.declared_ai and p.claim_generator == "sample-generator 1.0"
    assert p.actions[0].action == "c2pa.created" and p.actions[0].digital_source_type == "trainedAlgorithmicMedia"
    assert "signingCredential.untrusted" in p.failures and p.signer.startswith("Test generator")


def test_trust_anchors_make_the_signer_trusted(signed):
    files, ca = signed
    p = ProvenancePolicy(trust_anchors=ca).read_file(files["ai.jpg"])
    assert p.state == "trusted" and p.failures == []


def test_video_and_audio_manifests_are_read(signed):
    files, _ = signed
    camera = read_provenance(files["camera.mp4"])
    assert camera.state == "valid" and not camera.declared_ai
    assert camera.actions[0].digital_source_type == "digitalCapture"
    assert read_provenance(files["tts.wav"]).declared_ai


def test_missing_broken_and_tampered_manifests_never_raise(signed, media_dir, tmp_path):
    files, _ = signed
    assert read_provenance(files["photo.jpg"]) is None  # no manifest: the normal case
    assert read_provenance(media_dir / "pan.webm") is None
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert read_provenance(tmp_path / "junk.jpg") is None
    t = read_provenance(files["tampered.jpg"])
    assert t.state == "tampered" and "assertion.dataHash.mismatch" in t.failures


def test_policy_routes_declared_ai_and_tampering(signed):
    files, _ = signed
    policy = ProvenancePolicy(declared_ai="likely_fake")
    assert policy.route(read_provenance(files["ai.jpg"])) == "likely_fake"
    assert policy.route(read_provenance(files["camera.mp4"])) is None
    assert policy.route(read_provenance(files["tampered.jpg"])) == "review"
    assert ProvenancePolicy(declared_ai="ignore", tampered="ignore").route(read_provenance(files["tampered.jpg"])) is None
    assert ProvenancePolicy(read=False).read_file(files["ai.jpg"]) is None
