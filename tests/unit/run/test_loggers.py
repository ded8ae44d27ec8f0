"""The W&B mode, run name and group, decided without a network."""

import os
import socket
import time

import pytest

from capsnet.run.loggers import resolve_mode, run_name_from_overrides, sweep_group
from tests.helpers import compose_config


def test_auto_mode_is_offline_without_credentials(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_mode("auto") == "offline"


def test_auto_mode_is_offline_when_the_server_is_unreachable(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # the discard port: refused at once
    assert resolve_mode("auto") == "offline"


def test_explicit_modes_and_the_environment_win(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode("auto") == "disabled"
    assert resolve_mode("offline") == "offline"
    with pytest.raises(ValueError, match=r"logger\.wandb\.mode"):
        resolve_mode("sometimes")


def test_run_name_is_the_overrides_that_change_the_model():
    compose_config(
        "train", ["routing.iterations=2", "logger=csv", "paths.output_dir=/tmp/x", "decoder.alpha=0"]
    )
    assert run_name_from_overrides(default="train") == "routing.iterations=2,decoder.alpha=0"
    assert sweep_group() is None  # a single run
    compose_config("train", ["logger=csv"])
    assert run_name_from_overrides(default="train") == "train"


def test_an_empty_wandb_mode_in_the_environment_is_no_choice(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_MODE", "")
    assert resolve_mode("auto") == "offline"  # decided as without it: no credentials
    assert "WANDB_MODE" not in os.environ  # W&B itself would refuse the empty value


def test_credentials_in_the_server_url_are_never_logged(tmp_path, monkeypatch, caplog):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://alice:s3cret@127.0.0.1:9")
    with caplog.at_level("INFO"):
        assert resolve_mode("auto") == "offline"
    assert "s3cret" not in caplog.text and "alice" not in caplog.text
    assert "http://***@127.0.0.1:9 does not answer" in caplog.text


def test_a_server_that_accepts_but_never_answers_means_offline_within_seconds(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    with socket.socket() as silent:  # the kernel completes connections to it; nobody ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        monkeypatch.setenv("WANDB_BASE_URL", f"http://user:pw@127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        assert resolve_mode("auto") == "offline"
    assert time.monotonic() - started < 10


def test_a_server_that_answers_means_online(monkeypatch):
    """Any HTTP answer (here a 404 from a bare server on 127.0.0.1) counts."""
    import http.server
    import threading

    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    server = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{server.server_address[1]}")
    try:
        assert resolve_mode("auto") == "online"
    finally:
        thread.join(timeout=10)
        server.server_close()


def test_wandb_logger_takes_wandb_loggers_other_arguments_and_checks_its_folder(tmp_path):
    from capsnet.errors import ConfigError
    from capsnet.run.loggers import make_wandb_logger

    logger = make_wandb_logger("p", str(tmp_path / "w"), mode="offline", save_code=True, prefix="x")
    assert logger._prefix == "x" and logger._wandb_init["save_code"] is True  # passed through
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=f"logger.wandb.save_dir={tmp_path / 'file'}: W&B cannot write"):
        make_wandb_logger("p", str(tmp_path / "file"), mode="offline")


def test_any_wandb_error_at_the_start_falls_back_to_offline_with_one_warning(tmp_path, monkeypatch, caplog):
    """A server that answers but refuses (a rejected key, a server that is not W&B): in auto mode the
    run logs offline, as when the server does not answer, instead of crashing."""
    from lightning.pytorch.loggers import WandbLogger

    from capsnet.run import loggers

    monkeypatch.setattr(loggers, "resolve_mode", lambda mode: "online")

    def refused(self):
        if self._wandb_init["mode"] == "online":
            raise RuntimeError("api_key not valid (401 Unauthorized)")
        return "offline run"

    monkeypatch.setattr(WandbLogger, "experiment", property(refused))
    logger = loggers.make_wandb_logger("p", str(tmp_path), mode="auto")
    assert logger._wandb_init["mode"] == "offline"
    assert "could not start online (api_key not valid (401 Unauthorized)): logging offline" in caplog.text
