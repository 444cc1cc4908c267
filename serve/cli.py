"""`deepfake-detect serve`, `api-key`, `dataset`, `report` and `model`: registered through the
`deepfake_detect.commands` entry point, so the detector package never imports the server."""

from __future__ import annotations

import argparse
import copy
import getpass
import os
import time
from pathlib import Path

from detector.cli import BadValue, command, console, whole
from detector.config import ConfigError


def day(text: str) -> float:
    """An argparse type: YYYY-MM-DD, as the timestamp of that day's start in UTC."""
    from datetime import datetime, timezone

    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise BadValue(f"{text!r} is not a date as YYYY-MM-DD") from None


def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="serve YAML (configs/serve.yaml); default: built in")


def _serve_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--host", help="bind address (default from config: 127.0.0.1)")
    p.add_argument("--port", type=whole(1, 65535), help="port (default from config: 8000)")
    p.add_argument("--dev", action="store_true", default=os.environ.get("DEEPFAKE_DEV") == "1",
                   help="development: allow the default webhook secret (also DEEPFAKE_DEV=1)")


@command("serve", _serve_args, "deepfake-detect serve --config configs/serve.yaml --port 8080")
def serve_cmd(args: argparse.Namespace) -> int:
    """Start the detection server: API, scoring engine, review queue, reviewer page at /review."""
    from detector.frontend import start_forkserver

    start_forkserver()  # the scan workers' imports (torch) run beside this process's

    import uvicorn

    from detector.bundle import bundle_meta, resolve_bundle
    from serve.api import create_app
    from serve.config import DEFAULT_SECRET, load_serve_config

    cfg = load_serve_config(args.config)
    if cfg.webhooks.secret == DEFAULT_SECRET and not args.dev:
        raise ConfigError(f"{args.config or 'built-in settings'}: webhooks.secret: still the default "
                          f"{DEFAULT_SECRET!r}; set your own (or start with --dev for development)")
    if cfg.visual is None and cfg.audio is None:
        console.print("[red]the config names no model: set `visual` and/or `audio` to checkpoint bundles")
        return 2
    for modality in ("visual", "audio"):  # a missing bundle: one line now, not a failed startup later
        folder = resolve_bundle(getattr(cfg, modality), modality)
        if folder is not None:
            bundle_meta(folder)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # uvicorn's own lines, and ours beside them:
    log_config["loggers"]["serve"] = {"handlers": ["default"], "level": "INFO", "propagate": False}  # model switches
    uvicorn.run(create_app(cfg), host=args.host or cfg.host, port=args.port or cfg.port, log_level="info",
                log_config=log_config, timeout_graceful_shutdown=10)
    return 0


def _key_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--name", help="who holds the key (reviewers are known by it)")
    p.add_argument("--roles", help="comma-separated: submit, review, metrics, admin")
    p.add_argument("--expires-days", type=float, help="the key stops working this many days from now (default: never)")
    p.add_argument("--list", action="store_true", help="list the keys: holder, roles, dates (never the keys)")
    p.add_argument("--revoke", metavar="NAME", help="the key of this holder stops working now")


@command("api-key", _key_args,
         "deepfake-detect api-key --config configs/serve.yaml --name alice --roles review --expires-days 90")
def api_key_cmd(args: argparse.Namespace) -> int:
    """Create (or replace) an API key, printed once (only its hash is stored); or --list, or --revoke NAME."""
    from serve.config import load_serve_config
    from serve.store import Store
    from serve.store.keys import ROLES
    from serve.store.public import iso

    store = Store(load_serve_config(args.config).database_url)
    store.migrate()
    if args.list:
        for k in store.keys.listed():
            state = "revoked " + iso(k["revoked_at"]) if k["revoked_at"] else (
                "expires " + iso(k["expires_at"]) if k["expires_at"] else "no expiry")
            print(f"{k['name']}\t{k['roles']}\tcreated {iso(k['created_at'])}\t{state}")
        return 0
    if args.revoke:
        if not store.keys.revoke(args.revoke):
            raise ConfigError(f"no key of {args.revoke!r} to revoke (see --list)")
        console.print(f"revoked the key of {args.revoke}")
        return 0
    roles = [r.strip() for r in (args.roles or "").split(",") if r.strip()]
    if not args.name or not roles or set(roles) - set(ROLES):
        raise ConfigError(f"a new key needs --name and --roles, some of {', '.join(ROLES)} (or use --list, --revoke)")
    expires = time.time() + args.expires_days * 86400 if args.expires_days is not None else None
    print(store.keys.add(args.name, roles, expires_at=expires))
    return 0


def _dataset_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("action", choices=["export"], help="export: decided uploads as a labelled dataset")
    p.add_argument("--since", required=True, type=day, help="decisions from this day on, YYYY-MM-DD (UTC)")
    p.add_argument("--decisions", default="confirmed_fake,cleared",
                   help="which final labels to export, comma-separated: confirmed_fake, cleared")
    p.add_argument("--group-by", default="uploader",
                   help="metadata fields naming the account an upload came from, comma-separated, the first present "
                        "wins (else the API key's name): one group never sits on both sides of a training split")
    p.add_argument("--out", required=True, help="folder: labels.csv and media/ (a rerun copies only what is missing)")


@command("dataset", _dataset_args,
         "deepfake-detect dataset export --config configs/serve.yaml --since 2026-11-01 --out data/reviewed")
def dataset_cmd(args: argparse.Namespace) -> int:
    """Reviewers' decisions as a dataset the training commands read (labels.csv for `--dataset csv`)."""
    import functools

    from detector.progress import progress
    from serve.config import load_serve_config
    from serve.dataset import FINAL, export
    from serve.files import FileStore
    from serve.store import Store

    if not args.config:
        raise ConfigError("dataset export reads a server's database and store: name its settings with --config")
    wanted = [d.strip() for d in args.decisions.split(",") if d.strip()]
    if not wanted or set(wanted) - set(FINAL):
        raise ConfigError(f"--decisions takes some of {', '.join(FINAL)}, not {args.decisions!r}")
    cfg = load_serve_config(args.config)
    store = Store(cfg.database_url)
    store.migrate()
    group_by = tuple(f.strip() for f in args.group_by.split(",") if f.strip())
    with progress(console) as bar:
        counts = export(store, FileStore(cfg.store_dir), args.out, args.since, tuple(FINAL[d] for d in wanted), group_by,
                        progress=lambda total: functools.partial(bar.advance, bar.add_task("exporting", total=total)))
    store.audit.add(_actor(), "dataset_exported", {  # who took reviewed uploads out, and where
        "since": args.since, "decisions": wanted, "group_by": list(group_by), "out": str(Path(args.out).resolve())}
        | counts, time.time())
    console.print(f"{counts['exported']} uploads in {args.out}/labels.csv; left out: {counts['undecided']} with an "
                  f"appeal or escalation open, {counts['erased']} erased or expired, {counts['other_label']} other labels")
    return 0


def _actor() -> str:
    """Who ran a command, as the audit trail names them."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:  # no login name and no passwd entry for this uid (a bare container)
        return f"cli:uid{os.getuid()}"


def _report_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("--since", required=True, type=day, help="first day counted, YYYY-MM-DD (UTC)")
    p.add_argument("--format", choices=["json", "csv"], default="json")
    p.add_argument("--out", help="write here instead of stdout")


@command("report", _report_args,
         "deepfake-detect report --config configs/serve.yaml --since 2026-01-01 --format csv --out report.csv")
def report_cmd(args: argparse.Namespace) -> int:
    """Summary for a trust team or regulator: decisions, reviewer agreement, appeals, time in queue."""
    import json
    from pathlib import Path

    from serve.config import load_serve_config
    from serve.reports import report_csv, summary
    from serve.store import Store

    if not args.config:
        raise ConfigError("report reads a server's database: name its settings with --config")
    store = Store(load_serve_config(args.config).database_url)
    store.migrate()
    report = summary(store, args.since)
    text = report_csv(report) if args.format == "csv" else json.dumps(report, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text)
        console.print(f"wrote {args.out}")
    else:
        print(text, end="")
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    _config_args(p)
    p.add_argument("action", choices=["list", "register", "shadow", "compare", "promote", "rollback"],
                   help="list the registry; register BUNDLE as a candidate; shadow VERSION beside the live model; "
                        "compare VERSION with it on reviewed uploads (JSON); promote VERSION; rollback MODALITY")
    p.add_argument("target", nargs="?", help="register: a bundle folder; shadow, compare, promote: a version; "
                                             "rollback: visual or audio")


@command("model", _model_args,
         "deepfake-detect model register out/starter/face/bundle --config configs/serve.yaml  # then: model promote VERSION")
def model_cmd(args: argparse.Namespace) -> int:
    """The model registry of a server's database: list, register a bundle, shadow it, compare, promote, roll back."""
    from detector.bundle import bundle_meta
    from serve.config import load_serve_config
    from serve.store import Store
    from serve.store.tables import Conflict, Missing

    if not args.config:
        raise ConfigError("model reads and changes a server's database: name its settings with --config")
    if args.action != "list" and not args.target:
        raise ConfigError(f"model {args.action} needs its target: "
                          + ("a bundle folder" if args.action == "register" else
                             "visual or audio" if args.action == "rollback" else "a version"))
    store = Store(load_serve_config(args.config).database_url)
    store.migrate()
    actor = _actor()
    try:
        if args.action == "register":
            meta = bundle_meta(args.target)  # a folder every server reads: keep it where they all see it
            m = store.models.register(meta, str(Path(args.target).resolve()), actor)
        elif args.action == "promote":
            m = store.models.promote(args.target, actor)
        elif args.action == "shadow":
            m = store.models.shadow(args.target, actor)
        elif args.action == "compare":
            import json

            from serve.shadow import compare

            print(json.dumps(compare(store, args.target), indent=2))
            return 0
        elif args.action == "rollback":
            if args.target not in ("visual", "audio"):
                raise ConfigError(f"rollback takes visual or audio, not {args.target!r}")
            m = store.models.rollback(args.target, actor)
        else:
            for m in store.models.listed():
                print(f"{m['modality']}\t{m['version']}\t{m['state']}\t{m['name']}\t{m['path']}")
            return 0
    except (Missing, Conflict) as e:
        raise ConfigError(str(e)) from None
    console.print(f"{m['modality']} {m['name']}@{m['version']}: {m['state']}")
    return 0
