"""A user's mistake (a path, a settings file) is one line on stderr naming what and where, and exit code 2."""

from __future__ import annotations

import pytest

from detector.cli import main


def error_line(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_missing_bundle(capsys):
    assert error_line(capsys, ["export", "--checkpoint", "out/nope"]) == \
        "deepfake-detect export: error: out/nope: not a checkpoint bundle (no bundle.json)"


def test_missing_config_file(capsys, tmp_path):
    assert error_line(capsys, ["faces", "x.jpg", "--frontend", str(tmp_path / "nope.yaml")]) == \
        f"deepfake-detect faces: error: {tmp_path / 'nope.yaml'}: No such file or directory"


def test_yaml_syntax_error_names_file_line_and_column(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("faces:\n  thresholds: [0.8, 0.9\n")
    assert error_line(capsys, ["faces", "x.jpg", "--frontend", str(tmp_path / "c.yaml")]) == \
        f"deepfake-detect faces: error: {tmp_path / 'c.yaml'}:3:1: expected ',' or ']', but got '<stream end>'"


def test_bad_frontend_value(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("faces:\n  min_face_px: -3\n")
    assert error_line(capsys, ["faces", "x.jpg", "--frontend", str(tmp_path / "c.yaml")]) == \
        f"deepfake-detect faces: error: {tmp_path / 'c.yaml'}: faces.min_face_px: Input should be greater than 0"


@pytest.mark.parametrize("yaml_text, message", [
    ("engine:\n  max_batch_sise: 8\n", "engine.max_batch_sise: Extra inputs are not permitted"),
    ("review:\n  queue_decisions: [likely-fake, review]\n",
     "review.queue_decisions.0: Input should be 'likely_fake', 'review', 'clear' or 'no_signal'"),
    ("api_keys:\n  alice: {key: alice-key-0123456789, roles: [reviewer]}\n",
     "api_keys.alice.roles.0: Input should be 'submit', 'review', 'metrics' or 'admin'"),
    ("api_keys:\n  alice: {key: alice-key-0123456789, roles: []}\n",
     "api_keys.alice.roles: List should have at least 1 item after validation, not 0"),
], ids=["typo", "queue_decisions", "roles", "no_roles"])
def test_bad_serve_config(capsys, tmp_path, yaml_text, message):
    (tmp_path / "serve.yaml").write_text(yaml_text)
    assert error_line(capsys, ["serve", "--config", str(tmp_path / "serve.yaml")]) == \
        f"deepfake-detect serve: error: {tmp_path / 'serve.yaml'}: {message}"


def test_the_server_refuses_the_default_webhook_secret(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPFAKE_DEV", raising=False)
    (tmp_path / "serve.yaml").write_text("webhooks:\n  max_attempts: 3\n")
    assert error_line(capsys, ["serve", "--config", str(tmp_path / "serve.yaml")]) == (
        f"deepfake-detect serve: error: {tmp_path / 'serve.yaml'}: webhooks.secret: still the default 'change-me'; "
        "set your own (or start with --dev for development)")


def test_a_bad_value_in_a_command_config_names_its_key(capsys, tmp_path):
    (tmp_path / "score.yaml").write_text("out: r.jsonl\nworkers: -1\n")
    with pytest.raises(SystemExit) as done:  # refused while parsing, as argparse does
        main(["score", "--config", str(tmp_path / "score.yaml"), "x.jpg"])
    assert done.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        'deepfake-detect score: error: Parser key "workers": -1 is below 0 (see --help)']


@pytest.mark.parametrize("argv", [
    ["score", "a.mp4", "b.wav", "--out", "r.jsonl", "--workers", "0", "--frames", "8"],
    ["evaluate", "--dataset", "ffpp", "--root", "data/ffpp", "--option", "compression=c40", "--out", "rep", "--split", "all"],
    ["preprocess", "--dataset", "folder", "--root", "data/x", "--out", "cache", "--fps", "2"],
], ids=["score", "evaluate", "preprocess"])
def test_print_config_writes_a_config_that_gives_the_same_options(capsys, tmp_path, argv):
    with pytest.raises(SystemExit) as done:
        main(argv + ["--print_config"])
    assert done.value.code == 0
    written = capsys.readouterr().out
    (tmp_path / "c.yaml").write_text(written)
    with pytest.raises(SystemExit):
        main([argv[0], "--config", str(tmp_path / "c.yaml"), "--print_config"])
    assert capsys.readouterr().out == written


def test_options_after_the_config_win(capsys, tmp_path):
    (tmp_path / "c.yaml").write_text("out: r.jsonl\nworkers: 0\ninputs: [a.mp4]\n")
    with pytest.raises(SystemExit):
        main(["score", "--config", str(tmp_path / "c.yaml"), "--workers", "3", "--print_config"])
    out = capsys.readouterr().out
    assert "workers: 3\n" in out and "inputs:\n- a.mp4\n" in out
