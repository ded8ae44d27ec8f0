"""Every option of every config group composes, resolves, and (for data and model) instantiates."""

import hydra
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from capsnet.validation import ConfigError, validate_config

from .helpers import ROOT

CONF = ROOT / "conf"
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
    "experiment",
    "debug",
]
OPTIONS = [(group, path.stem) for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))]


def compose_config(name: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides, return_hydra_config=True)
    HydraConfig().set_config(cfg)  # so that ${hydra:...} resolves as in a real run
    with open_dict(cfg):
        del cfg.hydra
    OmegaConf.resolve(cfg)
    return cfg


def test_train_yaml_has_the_documented_keys():
    cfg = compose_config("train", [])
    assert cfg.routing.iterations == 3 and cfg.loss.margin_weight == 1.0 and cfg.decoder.alpha == 0.0005
    assert {"seed", "ckpt_path", "test", "train"} <= set(cfg)
    assert (
        cfg.model.routing == cfg.routing and cfg.model.decoder == cfg.decoder and cfg.model.loss == cfg.loss
    )


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes(group, option):
    cfg = compose_config("train", [f"{group}={option}"])
    validate_config(cfg)
    if group in ("data", "model"):
        instance = hydra.utils.instantiate(cfg[group])
        assert type(instance).__name__ == cfg[group]._target_.rsplit(".", 1)[1]


def test_eval_yaml_composes():
    cfg = compose_config("eval", ["ckpt_path=x.ckpt"])
    assert cfg.ckpt_path == "x.ckpt" and cfg.task_name == "eval"


def test_paper_experiment_is_the_papers_setup():
    cfg = compose_config("train", ["experiment=paper"])
    assert cfg.model.optimizer._target_ == "torch.optim.Adam" and cfg.model.optimizer.lr == 0.001
    assert (cfg.model.scheduler.decay_rate, cfg.model.scheduler.decay_steps) == (0.96, 2000)
    assert (cfg.data.batch_size, cfg.data.shift_pixels, cfg.routing.iterations) == (128, 2, 3)
    assert cfg.decoder.alpha == 0.0005


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
    ],
)
def test_validation_names_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_config(compose_config("train", [override]))
