"""Every option of every config group composes, resolves, and (for data and model) instantiates."""

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from capsnet.errors import ConfigError
from capsnet.run import tasks
from capsnet.run.checks import check_config
from capsnet.run.tasks import build_model
from tests.helpers import CONF, compose_config

GROUPS = [
    "data",
    "model",
    "model/scheduler",
    "routing",
    "loss",
    "decoder",
    "trainer",
    "logger",
    "callbacks",
    "paths",
    "process",
    "experiment",
    "hparams_search",
    "debug",
]


OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def test_train_yaml_has_the_documented_keys():
    cfg = compose_config("train", [])
    assert cfg.routing.iterations == 3 and cfg.loss.margin_weight == 1.0 and cfg.decoder.alpha == 0.0005
    assert {"seed", "ckpt_path", "test", "train"} <= set(cfg)
    assert not {"routing", "decoder", "loss"} & set(cfg.model)  # each value once: the groups are passed
    assert {"huge_pages", "malloc_mmap_threshold", "skip_triton_on_cpu"} <= set(cfg)  # from process/


# What an option needs besides itself to pass the checks.
NEEDS = {("logger", "mlflow"): ["logger.mlflow.tracking_uri=http://127.0.0.1:5000"]}


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group, option):
    cfg = compose_config("train", [f"{group}={option}", *NEEDS.get((group, option), [])])
    check_config(cfg)
    if group in ("data", "model"):
        instance = build_model(cfg) if group == "model" else hydra.utils.instantiate(cfg[group])
        assert type(instance).__name__ == cfg[group]._target_.rsplit(".", 1)[1]


def test_eval_and_visualize_yaml_compose():
    cfg = compose_config("eval", ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.task_name == "eval"
    cfg = compose_config("visualize", ["ckpt_path=x.ckpt"])
    assert cfg.task_name == "visualize" and cfg.figures_dir is None and "capsule_insights" in cfg.callbacks


def _hydra_node(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize(
    ("overrides", "launcher", "sweeper"),
    [
        ([], "BasicLauncher", "BasicSweeper"),
        (["hydra/launcher=joblib"], "JoblibLauncher", "BasicSweeper"),
        (["hydra/launcher=submitit_local"], "LocalLauncher", "BasicSweeper"),
        (["hydra/launcher=submitit_slurm"], "SlurmLauncher", "BasicSweeper"),
        (["hydra/launcher=slurm", "trainer=ddp"], "SlurmLauncher", "BasicSweeper"),
        (["hparams_search=capsnet_optuna"], "BasicLauncher", "OptunaSweeper"),
    ],
)
def test_every_launcher_and_sweeper_composes(overrides, launcher, sweeper):
    cfg = _hydra_node(overrides)
    assert cfg.hydra.launcher._target_.rsplit(".", 1)[1] == launcher
    assert cfg.hydra.sweeper._target_.rsplit(".", 1)[1] == sweeper
    hydra.utils.get_class(cfg.hydra.launcher._target_)  # the plugin is installed
    hydra.utils.get_class(cfg.hydra.sweeper._target_)


def test_slurm_launcher_asks_for_the_trainers_gpus_and_nodes():
    cfg = _hydra_node(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=8", "trainer.num_nodes=2"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert (launcher["gpus_per_node"], launcher["tasks_per_node"], launcher["nodes"]) == (8, 8, 2)


def test_a_sweep_job_without_its_objective_fails_by_name(monkeypatch):
    """A sweeper needs the value; a single run without it only warns (tests/integration/train)."""
    monkeypatch.setattr(tasks, "in_multirun", lambda: True)
    cfg = OmegaConf.create({"optimized_metric": "val/acc_best"})
    assert tasks.objective({"val/acc_best": 0.5}, cfg) == 0.5
    with pytest.raises(ConfigError, match="optimized_metric='val/acc_best' was not logged; logged: test/acc"):
        tasks.objective({"test/acc": 0.5}, cfg)


def test_optuna_search_space_and_objective():
    cfg = _hydra_node(["hparams_search=capsnet_optuna"])
    assert cfg.optimized_metric == "val/acc_best" and cfg.hydra.sweeper.direction == "maximize"
    assert cfg.hydra.sweeper.sampler.seed is not None
    assert set(cfg.hydra.sweeper.params) == {
        "routing.iterations",
        "decoder.alpha",
        "loss.margin_weight",
        "model.optimizer.lr",
    }


def test_paper_experiment_is_the_papers_setup():
    cfg = compose_config("train", ["experiment=paper"])
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 0.001
    assert (cfg.model.scheduler.decay_rate, cfg.model.scheduler.decay_steps) == (0.96, 2000)
    assert (cfg.data.batch_size, cfg.data.shift_pixels, cfg.routing.iterations) == (128, 2, 3)
    assert cfg.decoder.alpha == 0.0005 and cfg.loss.margin_weight == 1.0
    # the official schedule as written, under the paper's protocol: all 60k images, no validation
    assert (cfg.trainer.max_steps, cfg.trainer.max_epochs, cfg.data.val_size) == (300_000, -1, 0)
    assert cfg.optimized_metric is None


def test_paper_short_anneals_to_zero_in_15_epochs():
    cfg = compose_config("train", ["experiment=paper_short"])
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.OneCycleLR"
    assert (cfg.trainer.max_epochs, cfg.trainer.max_steps, cfg.data.val_size) == (15, -1, 0)
    assert (cfg.trainer.precision, cfg.model.compile, cfg.model.optimizer.lr) == ("bf16-mixed", True, 0.003)


@pytest.mark.parametrize("callbacks", ["default", "none"])
def test_fast_cpu_does_not_advise_itself_and_adds_no_callback(callbacks):
    cfg = compose_config("train", ["experiment=fast_cpu", f"callbacks={callbacks}"])
    run_length = [
        c for c in tasks.instantiate_group(cfg.callbacks) if type(c).__name__ == "RunLengthEstimate"
    ]
    assert [c.suggest_fast_cpu for c in run_length] == ([False] if callbacks == "default" else [])


@pytest.mark.parametrize("experiment", ["paper", "paper_short", "fast_cpu"])
@pytest.mark.parametrize("scheduler", ["exponential", "one_cycle", "none"])
def test_any_schedule_and_the_official_loss_compose_with_the_paper_experiments(experiment, scheduler):
    """The experiments choose their schedule and loss as groups and set none of their keys: a schedule
    or loss given on the command line replaces them whole (no keys of another schedule left over)."""
    cfg = compose_config(
        "train", [f"experiment={experiment}", f"model/scheduler={scheduler}", "loss=official"]
    )
    expected = compose_config("train", [f"model/scheduler={scheduler}"]).model.scheduler
    assert cfg.model.scheduler.keys() == expected.keys()
    assert cfg.loss.margin_weight == 0.05


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("routing.iterations=0", "routing.iterations"),
        ("routing.iterations=abc", "routing.iterations"),
        ("decoder.alpha=-1", "decoder.alpha"),
        ("data.batch_size=0", "data.batch_size"),
        ("loss.m_minus=0.95", "loss.m_minus"),
        ("trainer.precision=8", "trainer.precision"),
        ("model.optimizer.lr=0", "model.optimizer.lr"),
        ("malloc_mmap_threshold=-1", "malloc_mmap_threshold"),
        ("model.net.weight_init_std=0", "model.net.weight_init_std"),
        ("+loss.margin=2", "loss.margin: no such key"),  # added keys bypass Hydra's struct mode
        ("+decoder.dropout=0.1", "decoder.dropout: no such key"),
        ("+model.net.capsule_dim=8", "model.net.capsule_dim: no such key"),
    ],
)
def test_validation_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        check_config(compose_config("train", [override]))


def test_runs_started_in_the_same_second_get_folders_of_their_own():
    """Each process names its run and sweep folders with its own ${run_suffix:} (pid and host hash)."""
    import subprocess
    import sys

    code = "from capsnet.ops.hydra_runtime import RUN_SUFFIX; print(RUN_SUFFIX)"
    suffixes = {
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(suffixes) == 2
    from capsnet.ops.hydra_runtime import RUN_SUFFIX

    hydra_cfg = _hydra_node([])
    OmegaConf.resolve(hydra_cfg.hydra.run)
    OmegaConf.resolve(hydra_cfg.hydra.sweep)
    assert hydra_cfg.hydra.run.dir.endswith(f"_{RUN_SUFFIX}") and hydra_cfg.hydra.sweep.dir.endswith(
        f"_{RUN_SUFFIX}"
    )
