"""Training and inference speed of the project's own LightningModule, as `src/train.py` runs it.

    python scripts/benchmark.py --batch-size 128 --precision bf16-mixed --iterations 3 [--compile] [--json]

The model comes from the same Hydra configs as training (`conf/train.yaml` plus the overrides given
after the flags) and runs inside a real `lightning.Trainer`; a callback times every step. Reported
after warm-up, as medians of the timed steps:
- train: img/s and ms per step (forward, backward, optimizer, scheduler, Lightning's own work);
- inference: img/s of the validation step (forward and loss, no gradients);
- GFLOP per image of a training step (counted by torch's FLOP counter, as the direct convolution does
  it) and the achieved fraction of the matmul rate measured in this process;
- data: training batches per second of the DataModule (index, transfer, scale, shift), as img/s;
- peak RSS of the process, and of the timed steps alone (compilation left out; Linux); on a GPU, its
  name and the peak GPU memory of training.
"""

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("PROJECT_ROOT", str(ROOT))
# As src/train.py does with its default `huge_pages=true` (capsnet/ops/process.py), before torch loads;
# THP_MEM_ALLOC_ENABLE=0 in the environment measures without.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
sys.path.insert(0, str(ROOT / "src"))

from capsnet.ops.process import set_mmap_threshold, skip_triton_on_cpu  # noqa: E402

skip_triton_on_cpu(True)  # as src/train.py does with its default `skip_triton_on_cpu=true`

import hydra  # noqa: E402
import lightning as L  # noqa: E402
import torch  # noqa: E402
import torch._inductor.config  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import open_dict  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from capsnet.nn import bf16_in_float32, conv_fourier  # noqa: E402
from capsnet.run.tasks import build_model  # noqa: E402

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}  # "32": no autocast


class StepTimer(L.Callback):
    """Wall time of each training and validation batch; and, after ``warmup`` training batches, the
    process's peak resident memory is measured afresh (compilation's left out)."""

    def __init__(self, warmup: int):
        self.train, self.val = [], []
        self._start = 0.0
        self.warmup, self.peak_reset = warmup, False

    def _begin(self, *_):
        self._start = time.perf_counter()

    def on_train_batch_start(self, *args):
        if len(self.train) == self.warmup:
            self.peak_reset = reset_peak_rss()
        self._begin()

    def on_train_batch_end(self, *args):
        self.train.append(time.perf_counter() - self._start)

    def on_validation_batch_start(self, *args):
        self._begin()

    def on_validation_batch_end(self, *args):
        self.val.append(time.perf_counter() - self._start)


def reset_peak_rss() -> bool:
    """Start the process's peak resident memory (VmHWM) afresh, where Linux allows it; whether it did."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not Linux, or not allowed
        return False
    return True


def peak_rss_mb() -> float | None:
    """The process's peak resident memory since the last ``reset_peak_rss`` (Linux), in MB."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    line = next((row for row in status.splitlines() if row.startswith("VmHWM:")), None)
    return round(int(line.split()[1]) / 1024, 1) if line else None


def compose_config(args, output_dir: str):
    overrides = [
        f"data.batch_size={args.batch_size}",
        f"data.eval_batch_size={args.batch_size}",
        f"routing.iterations={args.iterations}",
        f"trainer.precision={args.precision}",
        f"model.compile={str(args.compile).lower()}",
        *([f"paths.data_dir={args.data_dir}"] if args.data_dir else []),
        *args.overrides,
    ]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    with open_dict(cfg):
        cfg.paths.output_dir = output_dir
    return cfg


def timed_runs(run, device: str, runs: int, warmup: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``run`` after ``warmup`` untimed ones, the device synchronised."""
    times = []
    for _ in range(warmup + runs):
        _sync(device)
        start = time.perf_counter()
        run()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times[warmup:]


def matmul_gflops(dtype: torch.dtype, device: str, size: int = 2048, repeats: int = 10) -> float:
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    return 2 * size**3 / statistics.median(timed_runs(lambda: torch.mm(a, b), device, repeats, 2)) / 1e9


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def training_flops_per_image(model, batch, precision: str) -> float:
    """FLOPs of the module's own training step, forward + backward, from torch's counter: the
    function's work as the direct convolution does it, on every host. (Where the PrimaryCaps layer goes
    through the Fourier transform, it multiplies less, and the fraction of the matmul rate counts the
    multiplications it saves: above 1 is possible.)"""
    small_batch = [t[:8] for t in batch]
    dtype = AUTOCAST_DTYPES.get(precision)
    with FlopCounterMode(display=False) as counter, conv_fourier.fourier_form_for():
        with torch.autocast(small_batch[0].device.type, dtype=dtype, enabled=dtype is not None):
            terms, _ = model._step(small_batch, "train")
        terms.total.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / len(small_batch[1])


def bare_training_step(model, batch, precision: str):
    """One forward + backward + optimizer step of the module's own loss and optimizer, outside Lightning."""
    dtype = AUTOCAST_DTYPES.get(precision)
    optimizer = hydra.utils.instantiate(model.hparams.optimizer, params=model.parameters())

    def step():
        with torch.autocast(batch[0].device.type, dtype=dtype, enabled=dtype is not None):
            terms, _ = model._step(batch, "train")
        terms.total.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def bare_step_ms(model, batch, precision: str, steps: int, warmup: int = 2) -> list[float]:
    """Wall time in ms of each of ``steps`` bare training steps (after ``warmup``): finer than the
    Lightning median for changes of a few %."""
    step = bare_training_step(model, batch, precision)
    return [1000 * s for s in timed_runs(step, batch[0].device.type, steps, warmup)]


def profile_training_step(model, batch, precision: str, rows: int = 15) -> str:
    """Where a training step's time goes: torch's profiler over one forward + backward + optimizer step
    of the module's own loss and optimizer (after one unprofiled step), the top ``rows`` operators by
    self time."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if batch[0].is_cuda else [])
    step = bare_training_step(model, batch, precision)
    step()
    with profile(activities=activities) as profiler:
        step()
    sort_by = "self_cuda_time_total" if batch[0].is_cuda else "self_cpu_time_total"
    return profiler.key_averages().table(sort_by=sort_by, row_limit=rows)


def data_img_per_s(datamodule, device: str, seconds: float = 3.0) -> float:
    """The DataModule's training batches as the trainer sees them: index, transfer, scale, shift."""

    class Training:
        training = True

    datamodule.trainer = Training()
    images = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for batch in datamodule.train_dataloader():
            batch = [t.to(device, non_blocking=True) for t in batch]
            images += len(datamodule.on_after_batch_transfer(batch, 0)[1])
            if time.perf_counter() - start >= seconds:
                break
    _sync(device)
    datamodule.trainer = None
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--precision", default="32", choices=["32", "bf16-mixed", "16-mixed"])
    parser.add_argument("--iterations", type=int, default=3, help="routing iterations")
    parser.add_argument("--compile", action="store_true", help="torch.compile the network")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=8, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compile, caches)")
    parser.add_argument("--data-dir", default=None, help="MNIST folder (default: the config's data_dir)")
    parser.add_argument("--json", action="store_true", help="also print one JSON object on its own line")
    parser.add_argument("--profile", action="store_true", help="also print the top operators of one step")
    parser.add_argument(
        "--bare-steps",
        type=int,
        default=0,
        help="also time this many steps outside Lightning (median, fastest)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model.channels_last=false")
    args = parser.parse_args()

    # The run's folder holds nothing worth keeping; it is removed when `scratch` is collected.
    if args.profile and args.compile:  # each compiled CPU kernel its own row (a few µs a call)
        torch._inductor.config.cpp.enable_kernel_profile = True
    scratch = tempfile.TemporaryDirectory(prefix="capsnet-bench-")
    cfg = compose_config(args, scratch.name)
    set_mmap_threshold(cfg.get("malloc_mmap_threshold"))
    L.seed_everything(0, verbose=False)
    datamodule = hydra.utils.instantiate(cfg.data)
    model = build_model(cfg)
    timer = StepTimer(args.warmup)
    steps = args.warmup + args.steps
    trainer = L.Trainer(
        accelerator="gpu" if args.device.startswith("cuda") else "cpu",
        devices=1,
        precision=args.precision,
        max_steps=steps,
        limit_val_batches=steps,
        val_check_interval=steps,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[timer],
    )
    trainer.fit(model, datamodule=datamodule)  # prepare_data gets MNIST if it is not there yet
    steps_peak_rss_mb = peak_rss_mb() if timer.peak_reset else None  # the timed steps' own
    peak_gpu_mb = torch.cuda.max_memory_allocated() / 2**20 if args.device.startswith("cuda") else None
    train_s = statistics.median(timer.train[args.warmup :])
    infer_s = statistics.median(timer.val[args.warmup :])

    device = torch.device(args.device)
    batch = [t.to(device) for t in next(iter(datamodule.train_dataloader()))]
    batch = datamodule.on_after_batch_transfer(batch, 0)
    model.to(device)
    flops = training_flops_per_image(model, batch, args.precision)
    # The rate of the dtype the step's products are computed in: float32 where bf16's are (a slow-bf16 CPU).
    matmul_dtype = AUTOCAST_DTYPES.get(args.precision, torch.float32)
    if matmul_dtype == torch.bfloat16 and bf16_in_float32.installed():
        matmul_dtype = torch.float32
    gflops_rate = matmul_gflops(matmul_dtype, args.device)

    train_rate = args.batch_size / train_s
    result = {
        "device": args.device,
        "batch_size": args.batch_size,
        "precision": args.precision,
        "iterations": args.iterations,
        "compile": args.compile,
        "threads": torch.get_num_threads(),
        "train_img_per_s": round(train_rate, 1),
        "ms_per_step": round(train_s * 1000, 1),
        "infer_img_per_s": round(args.batch_size / infer_s, 1),
        "train_gflop_per_img": round(flops / 1e9, 3),
        "achieved_gflops": round(train_rate * flops / 1e9, 1),
        "matmul_gflops": round(gflops_rate, 1),
        "matmul_dtype": str(matmul_dtype).removeprefix("torch."),
        "fraction_of_matmul_rate": round(train_rate * flops / 1e9 / gflops_rate, 3),
        "data_img_per_s": round(data_img_per_s(datamodule, args.device), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "steps_peak_rss_mb": steps_peak_rss_mb,
    }
    if args.bare_steps:
        bare = bare_step_ms(model, batch, args.precision, args.bare_steps)
        result |= {
            "bare_step_ms_median": round(statistics.median(bare), 1),
            "bare_step_ms_min": round(min(bare), 1),
        }
    if peak_gpu_mb is not None:  # training's peak, before the FLOP count and the matmul rate
        result |= {"gpu": torch.cuda.get_device_name(), "peak_gpu_mb": round(peak_gpu_mb, 1)}
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")
    if args.profile:
        print(profile_training_step(model, batch, args.precision))
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    from capsnet.errors import DataError

    try:
        main()
    except DataError as error:
        sys.exit(f"Data error: {error}")
