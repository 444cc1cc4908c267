"""`deepfake-detect`: one command, a subcommand per job."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from pydantic import ValidationError

from detector.config import ConfigError, FrontEndConfig, describe, load_config, read_yaml
from detector.progress import LineProgress, progress

def _console(stderr: bool = False) -> Console:
    """Rich on a terminal; elsewhere (a log file, a pipe) as wide as the text needs, so no path is cut or wrapped."""
    return Console(stderr=stderr, width=None if (sys.stderr if stderr else sys.stdout).isatty() else 100_000)


console = _console(stderr=True)
PLUGINS = "deepfake_detect.commands"  # entry-point group of modules that register more subcommands
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".opus"}
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str, bool]] = {}
# mistakes a user can fix (a path, a settings file): one line on stderr and exit code 2, never a traceback
INPUTS_FAILED = 3  # exit code of `score` and `faces` when some inputs could not be read or scored
USER_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError, ConfigError, ValidationError)


def command(name: str, add_args: Callable[[argparse.ArgumentParser], None], example: str, config_file: bool = False):
    """Register a subcommand: `add_args` declares its options, the decorated function runs it, `--help`
    ends with `example`; `config_file`: its options can also come from `--config YAML` (`--print_config`
    writes one), as LightningCLI's do."""

    def register(run: Callable[[argparse.Namespace], int]):
        COMMANDS[name] = (add_args, run, example, config_file)
        return run

    return register


class Parser(argparse.ArgumentParser):
    """A mistake on the command line is one line on stderr and exit code 2 (argparse adds the usage)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


class BadValue(argparse.ArgumentTypeError, ValueError):
    """A value these types refuse: argparse prints its text, jsonargparse (for a --config file) with the key."""


def whole(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` (to `high`)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise BadValue(f"{text!r} is not a whole number") from None
        if value < low or (high is not None and value > high):
            raise BadValue(f"{value} is out of range: {low} to {high}" if high is not None
                                             else f"{value} is below {low}")
        return value

    return parse


def fraction(text: str) -> float:
    """An argparse type: a rate from 0 up to (not including) 1."""
    try:
        value = float(text)
    except ValueError:
        raise BadValue(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        raise BadValue(f"{value:g} is not a rate from 0 up to 1")
    return value


def device(text: str) -> str:
    """An argparse type: auto, cpu, cuda or cuda:N, mps."""
    if re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        return text
    raise BadValue(f"{text!r}: expected auto, cpu, cuda, cuda:N or mps")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default after its help (unless the help says it already); examples kept as written."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS or "default" in text:
            return action.help
        return f"{text} (default: {'none' if action.default is None else '%(default)s'})"


def user_error(e: Exception) -> str:
    """What went wrong and where, on one line."""
    if isinstance(e, ValidationError):
        return describe(e)
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror}"
    return " ".join(str(e).split())


def expand_inputs(items: Iterable[str]) -> Iterator[Path]:
    """Files as given, folders walked recursively (sorted), `-` reads paths from stdin."""
    for item in items:
        if item == "-":
            yield from (Path(line.strip()) for line in sys.stdin if line.strip())
            continue
        path = Path(item)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        else:
            yield path


def _frontend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--frontend", help="YAML with limits/sampling/faces sections (default: built in)")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--frames", type=whole(1), help="frames to sample evenly per video (default 32)")
    group.add_argument("--fps", type=float, help="sample this many frames per second instead")
    p.add_argument("--device", type=device, help="auto, cpu, cuda, cuda:1 ... (default: the config's faces.device, auto)")
    p.add_argument("--workers", type=whole(0), default=2, help="processes that read uploads (0: this one)")


def _frontend_config(args: argparse.Namespace) -> FrontEndConfig:
    overrides = {}
    if args.frames is not None:
        overrides |= {"sampling.frames": args.frames, "sampling.fps": None}
    if args.fps is not None:
        overrides |= {"sampling.fps": args.fps, "sampling.frames": None}
    if args.device:
        overrides["faces.device"] = args.device
    return load_config(args.frontend, overrides)


def _faces_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+", help="files or folders (recursive); - reads paths from stdin")
    p.add_argument("--out", help="write one JSON line per file here")
    p.add_argument("--save-crops", metavar="DIR", help="save every face crop as JPEG under DIR")
    p.add_argument("--allow-errors", action="store_true", help=f"exit 0 even when some files could not be read (else {INPUTS_FAILED})")
    _frontend_args(p)


@command("faces", _faces_args,
         "deepfake-detect faces clip.mp4 uploads/ --out faces.jsonl --save-crops crops/")
def faces_cmd(args: argparse.Namespace) -> int:
    """Run the face front end and show what it saw in each file."""
    from detector.frontend.scan import ScanSettings, save_crops, scan_many

    cfg = _frontend_config(args)
    paths = list(expand_inputs(args.paths))
    settings = ScanSettings(limits=cfg.limits, sampling=cfg.sampling, faces=cfg.faces)
    out = open(args.out, "w") if args.out else None
    table = Table("file", "type", "frames", "frames with N faces", "tracks", "best prob", title="What the front end saw")
    errors = 0
    try:
        with _progress() as progress:
            task = progress.add_task("scanning", total=len(paths))
            for scan in scan_many(paths, settings, args.workers):
                progress.advance(task)
                record = scan.to_dict()
                if out:
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                if args.save_crops and scan.error is None:
                    save_crops(scan, args.save_crops)
                if scan.error is not None:
                    errors += 1
                    table.add_row(scan.path, f"[red]{scan.error['type']}", "", scan.error["message"], "", "")
                    continue
                counts = Counter(record["faces_per_frame"])
                per_frame = ", ".join(f"{k} with {n}" for n, k in sorted(counts.items())) or "-"
                best = max((f.prob for fr in scan.frames for f in fr.faces), default=None)
                table.add_row(scan.path, scan.info.media_type, str(len(scan.frames)), per_frame,
                              str(len(scan.tracks)), f"{best:.3f}" if best is not None else "-")
    finally:
        if out:
            out.close()
    _console().print(table)
    console.print(f"{len(paths)} files, {errors} could not be read" + (f"; results in {args.out}" if out else ""))
    return INPUTS_FAILED if errors and not args.allow_errors else 0


def _dataset_args(p: argparse.ArgumentParser) -> None:
    from detector.datasets import names

    p.add_argument("--dataset", required=True, choices=names(), help="adapter")
    p.add_argument("--root", required=True, help="the dataset's folder (or CSV file for `csv`)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option, e.g. compression=c40, methods=Deepfakes,FaceSwap, group_regex=^([a-z]+)")
    p.add_argument("--crops-as-is", action="store_true", help="the images are face crops already: no detection")


def _rows(args: argparse.Namespace, split: str | None = None):
    from detector.datasets import manifest

    options = {}
    for item in args.option:
        key, _, value = item.partition("=")
        options[key] = value.split(",") if key == "methods" else value
    rows = manifest(args.dataset, args.root, **options)
    return [r for r in rows if split in (None, "all", r.split)]


def _preprocess_args(p: argparse.ArgumentParser) -> None:
    _dataset_args(p)
    p.add_argument("--out", required=True, help="cache folder (resumes where a previous run stopped)")
    _frontend_args(p)


@command("preprocess", _preprocess_args,
         "deepfake-detect preprocess --dataset ffpp --root data/ffpp --option compression=c23 --out cache/ffpp",
         config_file=True)
def preprocess_cmd(args: argparse.Namespace) -> int:
    """Run the face front end over a dataset and keep the crops (resumable)."""
    from detector.training.cache import preprocess

    cfg = _frontend_config(args)
    rows = _rows(args)
    with _progress() as progress:
        task = progress.add_task("preprocessing", total=len(rows))
        counts = preprocess(rows, args.out, cfg, workers=args.workers, crops_as_is=args.crops_as_is,
                            progress=lambda: progress.advance(task))
    console.print(f"{len(rows)} files in the manifest: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="checkpoint bundle folder (default: the starter model of the dataset's "
                   "media, voice when every file is audio, else face)")
    _dataset_args(p)
    p.add_argument("--out", required=True, help="report folder: report.json, roc.png")
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--frames", type=whole(1), help="frames sampled per video (default: as the bundle was trained, else 32)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--workers", type=whole(0), default=2, help="processes that read uploads (0: this one)")


@command("evaluate", _evaluate_args,
         "deepfake-detect evaluate --checkpoint bundles/visual --dataset celebdf --root data/celebdf --out reports/celebdf",
         config_file=True)
def evaluate_cmd(args: argparse.Namespace) -> int:
    """Score a dataset with a bundle: frame/video AUC, AP, EER, log-loss, TPR at the stored threshold."""
    from detector.evaluate import evaluate

    rows = _rows(args, args.split)
    if not rows:
        console.print(f"[red]no rows in split {args.split!r}")
        return 2
    if args.checkpoint is None:
        from detector.bundle import resolve_bundle

        audio = all(Path(r.path).suffix.lower() in AUDIO_SUFFIXES for r in rows)
        args.checkpoint = resolve_bundle("starter", "audio" if audio else "visual")
    with _progress() as progress:
        task = progress.add_task("evaluating", total=len(rows))
        report = evaluate(args.checkpoint, rows, args.out, frames=args.frames, device=args.device,
                          crops_as_is=args.crops_as_is, workers=args.workers, progress=lambda: progress.advance(task))
    table = Table("level", "n (real/fake)", "AUC [95% CI]", "AP", "EER [95% CI]", "log-loss", "acc@t", "TPR@t", "FPR@t",
                  title=f"{args.dataset} {args.split}: {report['files']}")
    item, whole = report["levels"]
    rows_out = [(item, report[item]), (whole, report[whole])]
    rows_out += [("upload (scorer)", report["upload"])] if report["upload"] else []
    rows_out += [(f"{whole}: {k}", v) for k, v in report[f"per_source_{whole}"].items()]
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    ci = lambda r, k: fmt(r[k]) + (f" [{r[k + '_ci'][0]:.2f}-{r[k + '_ci'][1]:.2f}]" if r.get(k + "_ci") else "")  # noqa: E731
    for name, r in rows_out:
        table.add_row(name, f"{r['n']} ({r['n_real']}/{r['n_fake']})", ci(r, "auc"), fmt(r["ap"]), ci(r, "eer"),
                      fmt(r["log_loss"]), fmt(r.get("accuracy")), fmt(r.get("tpr")), fmt(r.get("fpr")))
    _console().print(table)
    console.print(f"report in {Path(args.out) / 'report.json'}, ROC in {Path(args.out) / 'roc.png'}")
    return 0


def _score_args(p: argparse.ArgumentParser) -> None:
    # SUPPRESS: no inputs on the command line keeps those of --config
    p.add_argument("inputs", nargs="*", default=argparse.SUPPRESS, help="files, folders (recursive), globs; - reads paths from stdin")
    p.add_argument("--manifest", help="CSV with a path column (relative to the CSV)")
    p.add_argument("--visual", default="starter",
                   help="face model: a bundle folder, starter (shipped in the package) or none")
    p.add_argument("--audio", default="starter",
                   help="voice model: a bundle folder, starter (shipped in the package) or none")
    p.add_argument("--out", required=True, help="results.jsonl: one Verdict or error record per upload; resumable")
    p.add_argument("--csv", help="also write a flat CSV summary here")
    p.add_argument("--allow-errors", action="store_true",
                   help=f"exit 0 even when some inputs failed (else {INPUTS_FAILED}; each has an error record)")
    p.add_argument("--retry-errors", action="store_true",
                   help="score again uploads that failed as unsupported, corrupt or too large (other errors always are)")
    p.add_argument("--workers", type=whole(0), default=2, help="processes that read uploads (0: this one)")
    p.add_argument("--batch-size", type=whole(1), help="crops or audio windows per model call (default: 64 on CUDA, 8 on CPU)")
    p.add_argument("--frames", type=whole(1), help="frames sampled per video (default: as the bundle was trained, else 32)")
    p.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="onnx: run the bundles' exported model.onnx with onnxruntime")
    p.add_argument("--fusion", help="fusion JSON (from `deepfake-detect fuse`); default: the most severe modality")
    p.add_argument("--declared-ai", choices=["ignore", "review", "likely_fake"], default="review",
                   help="decision at least, for uploads whose intact C2PA manifest declares AI-made media")
    p.add_argument("--trust-anchors", help="PEM file of CAs whose C2PA signers count as trusted")
    p.add_argument("--devices", type=whole(1), default=1, help="ranks per node: >1 runs Lightning DDP")
    p.add_argument("--num-nodes", type=whole(1), default=1, help="nodes of a DDP run (MASTER_ADDR, NODE_RANK set)")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu", "cuda"], default="auto", help="DDP's accelerator")


@command("score", _score_args,
         "deepfake-detect score uploads/ --visual bundles/visual --audio bundles/audio --out results.jsonl --csv results.csv",
         config_file=True)
def score_cmd(args: argparse.Namespace) -> int:
    """Score uploads in batch into results.jsonl (a rerun skips uploads already there)."""
    import csv
    import glob
    import time

    from detector.config import SamplingConfig
    from detector.scoring.fusion import Fusion
    from detector.frontend.provenance import ProvenancePolicy
    from detector.scoring.results import ResultsFile, signature
    from detector.frontend.scan import file_id
    from detector.scoring.scorer import Scorer

    items = list(getattr(args, "inputs", []))
    expanded = [p for item in items for p in (sorted(glob.glob(item)) if glob.has_magic(item) else [item])]
    paths = list(expand_inputs(expanded))
    if args.manifest:
        base = Path(args.manifest).parent
        with open(args.manifest, newline="") as f:
            reader = csv.DictReader(f)
            if "path" not in (reader.fieldnames or []):
                raise ConfigError(f"{args.manifest}: a manifest needs a `path` column; it has {reader.fieldnames or 'none'}")
            paths += [base / row["path"] for row in reader]
    if not paths:
        console.print("[red]nothing to score: give files, folders, globs, --manifest or - for stdin")
        return 2
    kwargs = dict(visual=args.visual, audio=args.audio, sampling=args.frames and SamplingConfig(frames=args.frames),
                  batch_size=args.batch_size, runtime=args.runtime,
                  fusion=Fusion.model_validate_json(Path(args.fusion).read_text()) if args.fusion else Fusion(),
                  provenance=ProvenancePolicy(declared_ai=args.declared_ai, trust_anchors=args.trust_anchors))
    scorer = Scorer(**kwargs, device=args.device)  # its models and settings say which earlier records still hold
    scored_by = signature([m.model_dump() for m in scorer.models], scorer.settings_id)
    results = ResultsFile(args.out, retry_errors=args.retry_errors)
    # hashing every input costs a read of it: only worth it when resuming
    todo = [p for p in paths if not (str(p) in results.done and p.is_file()
                                     and results.is_done(p, file_id(p), scored_by))]
    console.print(f"{len(paths)} uploads, {len(paths) - len(todo)} already in {args.out}, {len(todo)} to score")
    if args.devices * args.num_nodes > 1:
        from detector.scoring.distributed import score_distributed

        scorer.close()  # each rank builds its own
        n = score_distributed(todo, args.out, kwargs, args.devices, args.num_nodes, args.accelerator, workers=args.workers)
        console.print(f"this rank scored {n} uploads; results in {args.out}")
        return 0
    for warning in scorer.warnings:
        console.print(f"[bold yellow]warning:[/] {warning}")
    counts: Counter = Counter()
    failed: list[str] = []
    frames = 0
    started = time.perf_counter()
    with _progress() as progress, results, scorer:
        task = progress.add_task("scoring", total=len(todo))
        for record in scorer.score_many(todo, workers=args.workers):
            results.append(record)
            counts[getattr(record, "decision", "error")] += 1
            if not hasattr(record, "decision"):
                failed.append(f"{record.path}: {record.error.get('reason')}: {record.error.get('message', '')}"[:300])
            frames += record.visual.frames_scored if getattr(record, "visual", None) else 0
            progress.advance(task)
    took = max(time.perf_counter() - started, 1e-9)
    if args.csv:
        results.write_csv(args.csv)
    table = Table("decision", "uploads", title=f"scored {len(todo)} uploads in {took:.1f} s")
    for name in ("likely_fake", "review", "clear", "no_signal", "error"):
        table.add_row(name, str(counts[name]))
    table.add_row("uploads/s", f"{len(todo) / took:.2f}")
    table.add_row("frames/s", f"{frames / took:.1f}")
    _console().print(table)
    for line in failed:
        console.print(f"failed: {line}", markup=False, highlight=False)
    console.print(f"results in {args.out}" + (f" and {args.csv}" if args.csv else ""))
    return INPUTS_FAILED if failed and not args.allow_errors else 0


def _fuse_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", required=True, help="results.jsonl of validation uploads (from `score`)")
    p.add_argument("--labels", required=True, help="CSV with path and label (0 real, 1 fake) columns")
    p.add_argument("--out", required=True, help="fusion JSON for `score --fusion`")
    p.add_argument("--fpr", type=fraction, default=0.01, help="false-positive rate for likely_fake")
    p.add_argument("--review-fpr", type=fraction, default=0.1, help="false-positive rate for review")


@command("fuse", _fuse_args,
         "deepfake-detect fuse --results val.jsonl --labels val_labels.csv --out fusion.json")
def fuse_cmd(args: argparse.Namespace) -> int:
    """Fit a logistic fusion of visual and audio scores on labelled validation uploads."""
    import csv

    from detector.datasets import parse_label
    from detector.scoring.fusion import fit_fusion

    base = Path(args.labels).parent
    labels = {(base / r["path"]).resolve(): parse_label(r["label"]) for r in csv.DictReader(open(args.labels, newline=""))}
    scores, y = [], []
    for line in Path(args.results).read_text().splitlines():
        rec = json.loads(line)
        label = labels.get(Path(rec["path"]).resolve())
        if "decision" in rec and label is not None:
            scores.append({m: (rec.get(m) or {}).get("score") for m in ("visual", "audio")})
            y.append(label)
    fusion = fit_fusion(scores, y, args.fpr, args.review_fpr)
    Path(args.out).write_text(fusion.model_dump_json(indent=2))
    report = fusion.fitted_on["report"]
    console.print(f"fitted on {len(y)} labelled uploads: AUC {report['auc']:.3f}, EER {report['eer']:.3f}; "
                  f"likely_fake at {fusion.thresholds.likely_fake:.4f}; wrote {args.out}")
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint bundle folder")
    p.add_argument("--format", choices=["onnx"], default="onnx")
    p.add_argument("--out", help="where to write (default: BUNDLE/model.onnx, where `score --runtime onnx` looks)")


@command("export", _export_args, "deepfake-detect export --checkpoint bundles/visual")
def export_cmd(args: argparse.Namespace) -> int:
    """Export a bundle's network (visual or audio) to ONNX, metadata included."""
    from detector.export import export_onnx

    path = export_onnx(args.checkpoint, args.out)
    console.print(f"wrote {path}")
    return 0


def _finetune_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="bundle", required=True,
                   help="the bundle to start from: a folder, or starter (the shipped face model; with --voice, voice)")
    p.add_argument("--voice", action="store_true", help="--from starter means the shipped voice model")
    p.add_argument("--data", required=True, help="a folder from `deepfake-detect dataset export` (labels.csv, media/)")
    p.add_argument("--also", nargs="*", default=[],
                   help="public corpora mixed in: face crop caches (out/starter/face/cache) or the voice features "
                        "`starter voice` keeps (out/starter/voice/features.npz)")
    p.add_argument("--out", required=True, help="folder for the crops and the new bundle (OUT/bundle)")
    p.add_argument("--epochs", type=whole(1), default=2, help="face: epochs of training")
    p.add_argument("--lr", type=float, default=1e-4, help="face: learning rate (small: it starts from trained weights)")
    p.add_argument("--workers", type=whole(0), default=2, help="face: processes that read uploads and crops")


@command("finetune", _finetune_args,
         "deepfake-detect finetune --from starter --data data/reviewed --also out/starter/face/cache --out out/finetuned")
def finetune_cmd(args: argparse.Namespace) -> int:
    """Train a face or voice bundle further on your reviewers' decisions: a new versioned bundle with its card."""
    from detector.bundle import bundle_meta, resolve_bundle
    from detector.finetune import finetune

    import functools

    with _progress() as bar:
        built = finetune(resolve_bundle(args.bundle, "audio" if args.voice else "visual"), args.data, args.out,
                         also=args.also, epochs=args.epochs, lr=args.lr, workers=args.workers, say=console.print,
                         progress=lambda total: functools.partial(bar.advance, bar.add_task("reading uploads", total=total)))
    meta = bundle_meta(built)
    console.print(f"wrote {built}: {meta.name} version {meta.version}, thresholds review {meta.thresholds.review:.4f}, "
                  f"likely_fake {meta.thresholds.likely_fake:.4f}; next: `deepfake-detect model register {built}`")
    return 0


def _starter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("modality", choices=["face", "voice"])
    p.add_argument("--data", default="../shared/data", help="the corpora (see ../shared/data/README.md)")
    p.add_argument("--out", help="folder for the table and the bundle (default: out/starter/MODALITY)")
    p.add_argument("--folds", nargs="+", help="held-out sources (default: every one)")
    p.add_argument("--table-only", action="store_true", help="only the leave-one-source-out table, no final model")
    p.add_argument("--install", action="store_true",
                   help="copy the final bundle into the package (detector/weights), where `starter` finds it")
    p.add_argument("--recipe", help="face: YAML overriding the recipe's settings (e.g. configs/starter/face_gpu.yaml)")
    p.add_argument("--cache", help="face: crops already cut by an earlier run (its OUT/cache); --data is not read")


@command("starter", _starter_args, "deepfake-detect starter face --data ../shared/data --install")
def starter_cmd(args: argparse.Namespace) -> int:
    """Train a starter model on ../shared/data: its leave-one-source-out table, then the final model."""
    import shutil

    from detector.bundle import STARTER
    from detector.recipes import face, voice
    from detector.card import write_card

    out = Path(args.out or f"out/starter/{args.modality}")
    recipe = face if args.modality == "face" else voice
    folds = args.folds or (list(face.FOLDS) if args.modality == "face" else None)
    if args.modality == "face":
        overrides = read_yaml(args.recipe) if args.recipe else {}
        if unknown := set(overrides) - set(face.RECIPE):
            raise ConfigError(f"{args.recipe}: not a face recipe setting: {', '.join(sorted(unknown))}")
        table = face.run(args.data, out, folds, final=not args.table_only, recipe=overrides, cache=args.cache)
    elif args.recipe or args.cache:
        raise ConfigError("--recipe and --cache are for the face recipe")
    else:
        table = voice.run(args.data, out, folds, final=not args.table_only)
    _console().print(table.read_text())
    if args.install and not args.table_only:
        slot = "visual" if args.modality == "face" else "audio"
        (STARTER / slot).mkdir(parents=True, exist_ok=True)
        for name in ("model.safetensors", "bundle.json"):
            shutil.copy(out / "bundle" / name, STARTER / slot / name)
        write_card(STARTER / slot, recipe.CARD, "videos/images" if slot == "visual" else "files")
        console.print(f"installed as the starter {slot} model in {STARTER / slot}, with its MODEL_CARD.md")
    return 0


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="out/demo", help="folder for the sample uploads and results")


@command("demo", _demo_args, "deepfake-detect demo --out out/demo")
def demo_cmd(args: argparse.Namespace) -> int:
    """Build sample uploads in code, train two small models on generated data, score the samples."""
    import json

    from detector.demo import DISCLAIMER, run_demo
    from detector.frontend import start_forkserver

    start_forkserver()  # the scoring workers' imports run while the models train
    out = Path(args.out)
    (out / "results.jsonl").unlink(missing_ok=True)
    uploads, visual, audio = run_demo(out, say=console.print)
    ns = argparse.Namespace(inputs=[str(p) for p in uploads], manifest=None, visual=str(visual), audio=str(audio),
                            out=str(out / "results.jsonl"), csv=str(out / "results.csv"), workers=2, batch_size=None,
                            frames=16, device="auto", runtime="torch", fusion=None,
                            devices=1, num_nodes=1, accelerator="auto", declared_ai="review", trust_anchors=None,
                            retry_errors=False)
    score_cmd(ns)
    table = Table("upload", "type", "decision", "score", "face", "voice", title="Verdicts")
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for line in (out / "results.jsonl").read_text().splitlines():
        v = json.loads(line)
        table.add_row(Path(v["path"]).name, v.get("media_type", "-"), v.get("decision", "error"), fmt(v.get("score")),
                      fmt((v.get("visual") or {}).get("score")), fmt((v.get("audio") or {}).get("score")))
    _console().print(table)
    _console().print(f"[bold]{DISCLAIMER}[/bold]")
    return 0


@command("train", lambda p: None, "deepfake-detect train fit --config configs/visual/cpu_small.yaml --trainer.max_epochs 5")
def train_cmd(args: argparse.Namespace) -> int:
    """Train a detector with LightningCLI (`deepfake-detect train fit --help` lists its options)."""
    from detector.training.train import main as lightning_cli

    lightning_cli(args.lightning_args)
    return 0


def _progress() -> Progress | LineProgress:
    return progress(console)


def project() -> tuple[str, list[str]]:
    """This distribution's version and its command plugins (modules), read from pyproject.toml beside the
    package when it runs from a source tree (`python -m detector.cli`) rather than installed."""
    import importlib.metadata as metadata
    import tomllib

    from detector.version import PYPROJECT, version

    plugins = [p.value for p in metadata.entry_points(group=PLUGINS)]
    if not plugins and PYPROJECT.is_file():
        plugins = list(tomllib.loads(PYPROJECT.read_text())["project"].get("entry-points", {}).get(PLUGINS, {}).values())
    return version(), plugins


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one subcommand: jsonargparse's where its options can come from a YAML file."""
    add_args, run, example, config_file = COMMANDS[name]
    kwargs = dict(prog=f"deepfake-detect {name}", description=run.__doc__, epilog=f"example:\n  {example}",
                  formatter_class=HelpFormatter)
    if config_file:
        from jsonargparse import ActionConfigFile, ArgumentParser

        parser = ArgumentParser(exit_on_error=False, **kwargs)
        parser.add_argument("--config", action=ActionConfigFile,
                            help="YAML of these options (--print_config writes one); options given after it win")
    else:
        parser = Parser(**kwargs)
    add_args(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    import importlib

    version, plugins = project()
    for plugin in plugins:  # e.g. the server's `serve`
        importlib.import_module(plugin.partition(":")[0])
    top = Parser(prog="deepfake-detect", description=__doc__)
    top.add_argument("--version", action="version", version=f"%(prog)s {version}")
    sub = top.add_subparsers(dest="command", required=True)
    for name, (_, run, _, _) in COMMANDS.items():  # each command parses its own options below
        sub.add_parser(name, help=run.__doc__, add_help=False)
    args, rest = top.parse_known_args(argv)
    name = args.command
    if name == "train":  # LightningCLI reads the rest
        args.lightning_args = rest
    else:
        parser = command_parser(name)
        try:
            args = parser.parse_args(rest)
        except argparse.ArgumentError as e:  # jsonargparse's, with exit_on_error=False
            parser.exit(2, f"{parser.prog}: error: {' '.join(str(e).split())} (see --help)\n")
        args.command = name
    if getattr(args, "workers", 0) and getattr(args, "devices", 1) == 1:  # DDP ranks start their own
        from detector.frontend import start_forkserver

        start_forkserver()
    try:
        return COMMANDS[name][1](args)
    except USER_ERRORS as e:
        print(f"deepfake-detect {name}: error: {user_error(e)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # `python -m detector.cli`: plugins register with the imported module, not this copy
    from detector.cli import main as cli_main

    sys.exit(cli_main())
