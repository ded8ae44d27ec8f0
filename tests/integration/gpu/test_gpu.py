"""The GPU path: precisions, compilation, CUDA against the CPU on the same weights, a training step
without host synchronisation, DDP on two GPUs. Skipped without CUDA; run by `make gpu-check`."""

import contextlib

import hydra
import lightning as L
import pytest
import torch

from capsnet.nn.capsnet import CapsNet
from capsnet.nn.routing import DynamicRouting
from capsnet.run.tasks import build_model
from tests.helpers import compose_config, run_entry, run_if, run_in_process

GPU = ["trainer=gpu", "trainer.devices=1"]


@run_if(min_gpus=1)
@pytest.mark.parametrize("precision", ["32", "bf16-mixed", "16-mixed"])
def test_fast_dev_run_on_a_gpu(tmp_path, data_overrides, precision):
    overrides = ["debug=fast_dev_run", *data_overrides, *GPU, "trainer.accelerator=gpu"]
    result = run_in_process("train", [*overrides, f"trainer.precision={precision}"], tmp_path)
    assert result.code == 0, result.output[-3000:]
    assert "test/acc" in result.output


@run_if(min_gpus=1)
def test_the_compiled_model_trains_and_tests_on_a_gpu(tmp_path, data_overrides):
    overrides = ["debug=fast_dev_run", *data_overrides, *GPU, "trainer.accelerator=gpu", "model.compile=true"]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout


@contextlib.contextmanager
def exact_float32():
    """No TF32 in CUDA matmuls and convolutions (10-bit mantissas) while comparing with the CPU."""
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous


@run_if(min_gpus=1)
def test_routing_on_cuda_matches_the_cpu():
    """Same capsules and weights: fp32 on CUDA (TF32 off) agrees with the CPU to 1e-5."""
    torch.manual_seed(0)
    u, weight = torch.randn(16, 1152, 8), torch.randn(1152, 8, 10, 16) * 0.05
    routing = DynamicRouting(iterations=3)
    with exact_float32():
        on_cpu, on_gpu = routing(u, weight), routing(u.cuda(), weight.cuda())
    torch.testing.assert_close(on_gpu.outputs.cpu(), on_cpu.outputs, rtol=0, atol=1e-5)
    for gpu_c, cpu_c in zip(on_gpu.couplings, on_cpu.couplings, strict=True):
        torch.testing.assert_close(gpu_c.cpu(), cpu_c, rtol=0, atol=1e-5)


@run_if(min_gpus=1)
def test_the_network_on_cuda_matches_the_cpu_in_fp32_and_bf16():
    """The whole CapsNet on one batch: fp32 to 1e-4 (TF32 off); bf16 autocast within 0.02 of fp32 in
    capsule length, with the same predicted class for nearly every image."""
    torch.manual_seed(0)
    net, images = CapsNet().eval(), torch.rand(32, 1, 28, 28)
    labels = torch.arange(32) % 10
    with torch.no_grad():
        expected = net(images, labels)
        gpu_net = net.cuda()
        with exact_float32():
            fp32 = gpu_net(images.cuda(), labels.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu_net(images.cuda(), labels.cuda())
    torch.testing.assert_close(fp32.lengths.cpu(), expected.lengths, rtol=0, atol=1e-4)
    torch.testing.assert_close(fp32.reconstructions.cpu(), expected.reconstructions, rtol=0, atol=1e-4)
    assert (bf16.lengths.float().cpu() - expected.lengths).abs().max() < 0.02
    agree = (bf16.lengths.argmax(1).cpu() == expected.lengths.argmax(1)).float().mean()
    assert agree >= 0.9


class NoSyncWindow(L.Callback):
    """Turns CUDA's sync debug mode to "error" for training steps [start, stop): any host
    synchronisation inside them raises."""

    def __init__(self, start: int = 3, stop: int = 7):
        self.start, self.stop, self.checked = start, stop, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == self.start:
            torch.cuda.synchronize()
            torch.cuda.set_sync_debug_mode("error")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.start <= batch_idx < self.stop:
            self.checked += 1
        if batch_idx == self.stop - 1:
            torch.cuda.set_sync_debug_mode(0)


@run_if(min_gpus=1)
def test_training_steps_make_no_host_synchronisation(data_overrides):
    """After 3 warm-up steps, 4 whole training steps (forward, loss, backward, Adam, schedule,
    Lightning's loop) under sync debug mode "error"."""
    cfg = compose_config("train", [*data_overrides, "trainer=gpu"])
    window = NoSyncWindow()
    datamodule, model = hydra.utils.instantiate(cfg.data), build_model(cfg)
    trainer = L.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=8,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[window],
    )
    try:
        trainer.fit(model, datamodule=datamodule)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert window.checked == 4


@run_if(min_gpus=2)
def test_ddp_on_two_gpus_trains_and_tests(tmp_path, data_overrides):
    overrides = [*data_overrides, "trainer=ddp", "trainer.devices=2", "trainer.max_epochs=1", "logger=csv"]
    result = run_entry("train.py", overrides, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in result.stdout
