"""Audio front ends and networks, and the spoofed-speech dataset adapters."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch

from detector import samples
from detector.datasets import manifest
from detector.models import create_model, model_names
from detector.models.audio import Spectral

FAMILIES = {"lcnn": {}, "rawnet": {}, "timm": {"backbone": "resnet10t"}, "caffe_resnet": {},
            "voice_probe": {"features": ["whisper_mid", "hstats", "bands", "mel"]}}  # the shipped features


def test_registry_covers_every_family():
    assert set(model_names()) == set(FAMILIES)


@pytest.mark.parametrize("family", ["lcnn", "rawnet", "voice_probe"])
@pytest.mark.parametrize("samples_in", [8_000, 64_600])
def test_audio_nets_take_any_length_and_learn(family, samples_in):
    torch.manual_seed(0)
    net = create_model(family, **FAMILIES[family])
    x = torch.randn(3, samples_in) * 0.1
    out = net(x)
    assert out.shape == (3,) and torch.isfinite(out).all()
    out.sum().backward()
    # voice_probe learns its head only: its pretrained encoders stay as they came
    assert all(p.grad is not None for n, p in net.named_parameters() if not n.startswith(("encoder.", "whisper.")))


def test_lfcc_is_60_dimensional_at_100_frames_per_second():
    feats = Spectral("lfcc")(torch.from_numpy(samples.chirp(1.0)).unsqueeze(0))
    assert feats.shape == (1, 1, 60, 101)
    logmel = Spectral("logmel", n_filters=40, deltas=False)(torch.from_numpy(samples.chirp(1.0)).unsqueeze(0))
    assert logmel.shape == (1, 1, 40, 101)
    # a rising chirp: the energy's centre moves up the mel bands over time
    raw = Spectral("logmel", n_filters=40, deltas=False)
    spec = raw.fb @ torch.stft(torch.from_numpy(samples.chirp(1.0)), 512, 160, 320, raw.window, return_complex=True).abs() ** 2
    peak = spec.argmax(0)
    assert peak[90] > peak[10]


def write(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_asvspoof2019_protocols(tmp_path):
    proto = tmp_path / "ASVspoof2019_LA_cm_protocols"
    write(proto / "ASVspoof2019.LA.cm.train.trn.txt", "LA_0079 LA_T_1 - - bonafide\nLA_0079 LA_T_2 - A01 spoof\n")
    write(proto / "ASVspoof2019.LA.cm.eval.trl.txt", "LA_0039 LA_E_9 - A17 spoof\n")
    rows = manifest("asvspoof2019", tmp_path)
    assert [(Path(r.path).name, r.label, r.split, r.group, r.source) for r in rows] == [
        ("LA_T_1.flac", 0, "train", "LA_0079", "asvspoof2019/bonafide"),
        ("LA_T_2.flac", 1, "train", "LA_0079", "asvspoof2019/A01"),
        ("LA_E_9.flac", 1, "test", "LA_0039", "asvspoof2019/A17")]
    assert Path(rows[0].path).parent == (tmp_path / "ASVspoof2019_LA_train" / "flac").resolve()


def test_asvspoof2021_keys(tmp_path):
    write(tmp_path / "keys/DF/CM/trial_metadata.txt",
          "LA_0043 DF_E_2000026 mp3m4a asvspoof A09 spoof notrim eval\nLA_0021 DF_E_2000027 nocodec vcc2020 - bonafide notrim eval\n")
    rows = manifest("asvspoof2021", tmp_path, track="DF")
    assert [(r.label, r.split, r.source) for r in rows] == [(1, "test", "asvspoof2021_DF/A09/mp3m4a"),
                                                            (0, "test", "asvspoof2021_DF/bonafide/nocodec")]


def test_inthewild_and_wavefake(tmp_path):
    write(tmp_path / "itw/meta.csv", "file,speaker,label\n0.wav,Alec Guinness,spoof\n1.wav,Alec Guinness,bona-fide\n")
    rows = manifest("inthewild", tmp_path / "itw")
    assert [r.label for r in rows] == [1, 0] and rows[0].split == rows[1].split
    write(tmp_path / "wf/LJSpeech-1.1/wavs/LJ001-0001.wav")
    write(tmp_path / "wf/generated_audio/ljspeech_melgan/LJ001-0001_gen.wav")
    rows = manifest("wavefake", tmp_path / "wf")
    assert [(r.label, r.group, r.source) for r in rows] == [(0, "LJ001-0001", "wavefake/original"),
                                                            (1, "LJ001-0001", "wavefake/ljspeech_melgan")]
    assert rows[0].split == rows[1].split


def test_shared_speech_splits_by_sentence(shared_data):
    rows = manifest("csv", shared_data / "audio" / "labels.csv", group_regex=r"universal_melgan/[^/]+/(.+)\.wav")
    splits = collections.defaultdict(set)
    for r in rows:
        splits[r.group].add(r.split)
    assert all(len(s) == 1 for s in splits.values())
    by_path = {r.path.split("universal_melgan/")[-1]: r for r in rows if "universal_melgan" in r.path}
    assert len(by_path) == 280 and np.mean([r.label for r in by_path.values()]) == pytest.approx(0.75)
    for cond in ("eng_seen_single", "eng_ood_noisy"):  # a sentence and its vocoded copies go together
        assert by_path[f"gt/{cond}/3.wav"].group == by_path[f"waveglow/{cond}/3.wav"].group == f"{cond}/3"
