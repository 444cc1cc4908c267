"""Spoofed-speech datasets: ASVspoof 2019 LA, ASVspoof 2021 LA/DF, In-the-Wild, WaveFake.

Groups are speakers (ASVspoof, In-the-Wild) or sentences (WaveFake), so no voice or sentence
straddles two splits; `source` keeps the attack, vocoder or codec for per-attack results.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from detector.datasets import Row, hash_split, parse_label, register

_ASV19_SPLITS = {"train": ("train.trn", "train"), "dev": ("dev.trl", "val"), "eval": ("eval.trl", "test")}


def _find(root: Path, name: str) -> Path | None:
    return next(iter(sorted(root.rglob(name))), None)


@register("asvspoof2019")
def asvspoof2019(root: Path, track: str = "LA") -> Iterator[Row]:
    """Protocols `ASVspoof2019.LA.cm.{train.trn,dev.trl,eval.trl}.txt` (SPEAKER UTT - SYSTEM KEY),
    audio `ASVspoof2019_LA_<part>/flac/UTT.flac`; official train/dev/eval become train/val/test."""
    for part, (suffix, split) in _ASV19_SPLITS.items():
        protocol = _find(root, f"ASVspoof2019.{track}.cm.{suffix}.txt")
        if protocol is None:
            continue
        audio = root / f"ASVspoof2019_{track}_{part}" / "flac"
        for line in protocol.read_text().splitlines():
            fields = line.split()
            if len(fields) < 5:
                continue
            speaker, utt, _, system, key = fields[:5]
            label = parse_label(key)
            yield Row(str((audio / f"{utt}.flac").resolve()), label, split, speaker,
                      f"asvspoof2019/{system if label else 'bonafide'}")


@register("asvspoof2021")
def asvspoof2021(root: Path, track: str = "LA") -> Iterator[Row]:
    """`keys/<track>/CM/trial_metadata.txt` (SPEAKER UTT CODEC TRANSMISSION ATTACK KEY ...), audio
    `ASVspoof2021_<track>_eval/flac/UTT.flac`; all of it is evaluation data (test)."""
    meta = root / "keys" / track / "CM" / "trial_metadata.txt"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta}: the ASVspoof 2021 keys are needed for labels")
    audio = root / f"ASVspoof2021_{track}_eval" / "flac"
    for line in meta.read_text().splitlines():
        f = line.split()
        if len(f) < 6:
            continue
        speaker, utt, codec, _, attack, key = f[:6]
        label = parse_label(key)
        yield Row(str((audio / f"{utt}.flac").resolve()), label, "test", speaker,
                  f"asvspoof2021_{track}/{attack if label else 'bonafide'}/{codec}")


@register("inthewild")
def inthewild(root: Path) -> Iterator[Row]:
    """`meta.csv` with file,speaker,label (bona-fide / spoof); split by speaker."""
    with (root / "meta.csv").open(newline="") as f:
        for rec in csv.DictReader(f):
            speaker = rec["speaker"].strip()
            yield Row(str((root / rec["file"]).resolve()), parse_label(rec["label"]), hash_split(speaker), speaker,
                      "inthewild")


@register("wavefake")
def wavefake(root: Path, originals: str = "LJSpeech-1.1/wavs") -> Iterator[Row]:
    """`generated_audio/<vocoder>/*.wav` beside the originals (`originals`, LJSpeech by default);
    a generated file and its original share the sentence id, hence the group."""
    for p in sorted((root / originals).glob("*.wav")):
        yield Row(str(p.resolve()), 0, hash_split(p.stem), p.stem, "wavefake/original")
    for vocoder in sorted(d for d in (root / "generated_audio").glob("*") if d.is_dir()):
        for p in sorted(vocoder.glob("*.wav")):
            sentence = p.stem.removesuffix("_gen").removesuffix("_generated")
            yield Row(str(p.resolve()), 1, hash_split(sentence), sentence, f"wavefake/{vocoder.name}")
