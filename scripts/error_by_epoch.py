"""Test error of every epoch's checkpoint of a training run, against the paper and public reproductions.

    python scripts/error_by_epoch.py <run folder> [<run folder> ...] [--out DIR] [eval overrides]

Give every folder a run was resumed into (each holds the ``checkpoints/epoch_NNN.ckpt`` it saved; keep
them all with ``+callbacks.model_checkpoint.save_top_k=-1``). Each checkpoint is tested once with
``src/eval.py`` (the test set is looked at only here, after training); a checkpoint already tested in
``--out`` is not tested again, so the script can be stopped and run again. Writes
``test_error_by_epoch.csv``, ``.md`` and ``.png`` into ``--out`` (default: ``<first folder>/test_by_epoch``):
the test error in % by epoch, beside the paper's 0.25% and the 0.30-0.36% of the best public
reproductions. A checkpoint that cannot be read or tested is named and left out; the others are still
tabled, and the script then exits 1.
"""

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import torch

from capsnet.viz import charts

ROOT = Path(__file__).resolve().parents[1]
PAPER = 0.25  # % test error, CapsNet with 3 routing iterations and reconstruction (Sabour et al., Table 1)
REPRODUCTIONS = (0.30, 0.36)  # % test error, the best public reproductions


def epoch_checkpoints(run_dirs: list[Path], failures: list[str]) -> dict[int, Path]:
    """{epoch: checkpoint}, read from each checkpoint's own ``epoch``; an epoch saved twice is refused.
    A file that cannot be read is added to ``failures`` and skipped."""
    found: dict[int, Path] = {}
    for path in sorted(p for run in run_dirs for p in (run / "checkpoints").glob("epoch_*.ckpt")):
        try:
            epoch = torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"]
        except Exception as error:  # a damaged file, of any kind: named, the others go on
            failures.append(f"{path}: not a readable checkpoint ({type(error).__name__})")
            continue
        if epoch in found:
            sys.exit(f"epoch {epoch} has two checkpoints: {found[epoch]} and {path}; give one run's folders")
        found[epoch] = path
    return dict(sorted(found.items()))


def test_error(checkpoint: Path, out: Path, overrides: list[str]) -> float | None:
    """The checkpoint's test error in %, from ``src/eval.py`` (run once; its metrics.json kept in ``out``);
    None when eval fails (its output says why)."""
    metrics_file = out / "metrics.json"
    if not metrics_file.exists():
        command = [sys.executable, str(ROOT / "src" / "eval.py"), f"ckpt_path={checkpoint}", "logger=csv"]
        command += [f"hydra.run.dir={out}", *overrides]
        print("+", " ".join(command), flush=True)
        if subprocess.run(command, cwd=ROOT).returncode:
            return None
    return 100 * json.loads(metrics_file.read_text())["test/error"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", type=Path, nargs="+", help="the run's folders, first to last")
    parser.add_argument("--out", type=Path, default=None)
    args, overrides = parser.parse_known_args(argv)
    out = args.out or args.runs[0] / "test_by_epoch"
    failures: list[str] = []
    checkpoints = epoch_checkpoints(args.runs, failures)
    if not checkpoints:
        sys.exit(
            "\n".join(
                [*failures, f"no readable checkpoints/epoch_*.ckpt in {', '.join(map(str, args.runs))}"]
            )
        )
    errors = {}
    for epoch, path in checkpoints.items():
        if (error := test_error(path, out / f"epoch_{epoch:03d}", overrides)) is None:
            failures.append(f"{path}: src/eval.py failed (its output is above)")
        else:
            errors[epoch] = error
    if not errors:
        sys.exit("\n".join(failures))

    out.mkdir(parents=True, exist_ok=True)
    with (out / "test_error_by_epoch.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "test_error_percent", "checkpoint"])
        writer.writerows([epoch, f"{error:.2f}", checkpoints[epoch]] for epoch, error in errors.items())
    best, last = min(errors, key=errors.get), max(errors)
    lines = [
        *(["Left out: " + "; ".join(failures), ""] if failures else []),
        "| epoch | test error % |",
        "|---|---|",
        *[f"| {epoch} | {error:.2f} |" for epoch, error in errors.items()],
        "",
        f"Lowest: {errors[best]:.2f}% at epoch {best}; last: {errors[last]:.2f}% at epoch {last}. "
        f"Paper: {PAPER}%; best public reproductions: {REPRODUCTIONS[0]:.2f}-{REPRODUCTIONS[1]:.2f}%.",
    ]
    (out / "test_error_by_epoch.md").write_text("\n".join(lines) + "\n")
    labels = [str(epoch) for epoch in errors]
    series = {
        "this project": list(errors.values()),
        f"paper ({PAPER}%)": [PAPER] * len(errors),
        f"reproductions, best ({REPRODUCTIONS[0]:.2f}%)": [REPRODUCTIONS[0]] * len(errors),
        f"reproductions ({REPRODUCTIONS[1]:.2f}%)": [REPRODUCTIONS[1]] * len(errors),
    }
    charts.series_chart(labels, series, "MNIST test error by epoch", "epoch", "test error %").save(
        out / "test_error_by_epoch.png"
    )
    print("\n".join(lines))
    for name in ("test_error_by_epoch.md", "test_error_by_epoch.csv", "test_error_by_epoch.png"):
        print(out / name)
    if failures:
        sys.exit("left out:\n" + "\n".join(failures))


if __name__ == "__main__":
    main()
