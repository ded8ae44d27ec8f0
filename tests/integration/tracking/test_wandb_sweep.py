"""A run started by a W&B sweep agent: the command line the agent runs, in the agent's environment."""

import os
import subprocess
import sys

import yaml
from omegaconf import OmegaConf
from wandb.sdk.launch.sweeps.utils import create_sweep_command, create_sweep_command_args
from wandb.sdk.lib.config_util import save_config_file_from_dict

from tests.helpers import ROOT, read_wandb_run

SWEEP = ROOT / "conf" / "wandb_sweeps" / "capsnet.yaml"
DRAWN = {
    "routing.iterations": 2,
    "decoder.alpha": 0.0005,
    "loss.margin_weight": 1.0,
    "model.optimizer.lr": 0.001,
}


def _inside(value, space: dict) -> bool:
    if "values" in space:
        return value in space["values"]
    return space["min"] <= value <= space["max"]


def _agent_command(sweep: dict, args: dict, run_id: str) -> list[str]:
    """What ``wandb agent`` runs for one run: the sweep's ``command`` with W&B's own substitutions."""
    values = create_sweep_command_args({"args": args, "run_id": run_id})
    values |= {"env": ["/usr/bin/env"], "interpreter": [sys.executable], "program": [sweep["program"]]}
    words = []
    for word in create_sweep_command(sweep["command"]):
        variable = word[2:-1] if word.startswith("${") and word.endswith("}") else None
        words += values.get(variable, []) if variable else [word]
    return words


def test_a_run_started_by_an_agent_joins_the_sweep_and_reports_its_metric(tmp_path, tiny_overrides):
    sweep = yaml.safe_load(SWEEP.read_text())
    assert sweep["metric"] == {"name": "val/acc_best", "goal": "maximize"}
    assert set(DRAWN) == set(sweep["parameters"])  # the space of hparams_search=capsnet_optuna
    assert all(_inside(value, sweep["parameters"][key]) for key, value in DRAWN.items())
    fixed = [  # what a user would fix with `value:` entries; here: the tiny data, gradients watched
        *tiny_overrides,
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
        "logger=wandb",
        "callbacks.wandb_watch.log=gradients",
        "callbacks.wandb_watch.log_freq=1",
        f"paths.log_dir={tmp_path}",
    ]
    args = {key: {"value": value} for key, value in DRAWN.items()}
    args |= {key: {"value": value} for key, value in (override.split("=", 1) for override in fixed)}
    run_id = "agentrun0"
    param_file = tmp_path / "wandb" / "sweep-sweep0" / f"config-{run_id}.yaml"
    param_file.parent.mkdir(parents=True)
    save_config_file_from_dict(str(param_file), args)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")},
        "WANDB_SWEEP_ID": "sweep0",
        "WANDB_RUN_ID": run_id,
        "WANDB_SWEEP_PARAM_PATH": str(param_file),
        "WANDB_MODE": "offline",  # no server here: the online path is tests/online (marker wandb_server)
    }
    command = _agent_command(sweep, args, run_id)
    assert (
        command[:3] == ["/usr/bin/env", sys.executable, "src/train.py"] and "routing.iterations=2" in command
    )
    result = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL
    )
    assert result.returncode == 0, result.stderr[-3000:]

    (run_dir,) = tmp_path.glob(f"train/runs/*/wandb/offline-run-*-{run_id}")
    run = read_wandb_run(run_dir)
    assert run.run["run_id"] == run_id and run.run["run_group"] == "sweep-sweep0"
    assert run.config["routing"]["iterations"] == 2 and run.config["decoder"]["alpha"] == 0.0005
    assert 0.0 <= run.summary["val/acc_best"] <= 1.0  # the metric the sweep maximises
    logged = {key for row in run.history for key in row}
    assert any(key.startswith("gradients/net.") for key in logged)  # callbacks.wandb_watch


def test_every_sweep_files_parameters_are_keys_the_config_has():
    from tests.helpers import compose_config

    for path in sorted((ROOT / "conf" / "wandb_sweeps").glob("*.yaml")):
        sweep = yaml.safe_load(path.read_text())
        assert sweep["program"] == "src/train.py" and "${args_no_hyphens}" in sweep["command"], path.name
        first = {key: space["values"][0] if "values" in space else space.get("value", space.get("min"))
                 for key, space in sweep["parameters"].items()}  # fmt: skip
        cfg = compose_config("train", [f"{key}={value}" for key, value in first.items()])
        for key, value in first.items():
            assert OmegaConf.select(cfg, key) == value, (path.name, key)
    grid = yaml.safe_load((ROOT / "conf" / "wandb_sweeps" / "grid.yaml").read_text())
    runs = 1
    for space in grid["parameters"].values():
        runs *= len(space["values"])
    assert grid["method"] == "grid" and runs == 18  # iterations x alpha x seed
