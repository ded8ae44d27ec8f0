"""Classifying image files with a trained checkpoint (``src/predict.py``); reading them: ``data.image_files``.

Images are read one by one (a file that cannot be read is reported and the others go on) and
classified in batches. Every result, failures included, goes to ``predictions.csv`` and
``predictions.json`` in the run folder; a CapsNet's reconstruction of each image (the input beside it)
to ``<file name>.reconstruction.png`` there, named after the whole file name so that ``a.png`` and
``a.jpg`` never overwrite each other (a name too long for that keeps its start and gains a hash of the
whole; a reconstruction that cannot be written is that file's error, never the others' loss).
"""

import csv
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import rich
import rich.table
import rich.text
import torch

from capsnet.data.image_files import load_image
from capsnet.errors import InputError
from capsnet.viz.charts import image_grid


@dataclass
class Prediction:
    path: Path
    label: int | None = None  # None: the file could not be classified (see error)
    scores: list[float] = field(default_factory=list)  # capsule lengths, or softmax probabilities
    notes: list[str] = field(default_factory=list)  # what was done to the image to make it fit
    reconstruction: Path | None = None
    error: str | None = None


@torch.no_grad()
def resolve_device(device: str) -> torch.device:
    """``auto``: the GPU (CUDA, then Apple's MPS) when there is one, else the CPU; otherwise as given."""
    if device != "auto":
        return torch.device(device)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


@torch.inference_mode()
def predict(
    model,
    files: list[Path],
    output_dir: Path,
    invert: str = "auto",
    center: str = "auto",
    batch_size: int = 256,
):
    """Classify every file, ``batch_size`` images a forward pass, on the model's device; results in the
    order of ``files``."""
    model.eval()
    image_shape = tuple(model.hparams.net["image_shape"])
    output_dir.mkdir(parents=True, exist_ok=True)
    results = [Prediction(path) for path in files]
    readable: list[tuple[Prediction, torch.Tensor]] = []
    for result in results:
        try:
            image, result.notes = load_image(result.path, image_shape, invert, center)
            readable.append((result, image))
        except InputError as error:
            result.error = str(error)
    for start in range(0, len(readable), batch_size):
        batch = readable[start : start + batch_size]
        images = torch.stack([image for _, image in batch]).to(model.device)
        output = model(images)
        scores = model.scores(output).float().cpu()
        reconstructions = getattr(output, "reconstructions", None)
        reconstructions = None if reconstructions is None else reconstructions.float().cpu()
        if reconstructions is None:  # the baseline: logits to probabilities
            scores = scores.softmax(dim=1)
        for row, (result, image) in enumerate(batch):
            result.label = int(scores[row].argmax())
            result.scores = [round(float(s), 4) for s in scores[row]]
            if reconstructions is not None:
                path = output_dir / reconstruction_name(result.path.name)
                pair = torch.stack([image.to(reconstructions), reconstructions[row]])
                try:
                    image_grid(pair, columns=2).save(path)
                    result.reconstruction = path
                except OSError as error:
                    result.error = (
                        f"{result.path}: classified, but its reconstruction was not written ({error})"
                    )
    return results


NAME_BYTES = 255  # the longest file name most file systems allow
SUFFIX = ".reconstruction.png"


def reconstruction_name(name: str) -> str:
    """``<name>.reconstruction.png``; a name too long for that keeps its start and ends in a hash of
    the whole name, so that two long names never share a reconstruction."""
    whole = f"{name}{SUFFIX}"
    if len(whole.encode()) <= NAME_BYTES:
        return whole
    digest = hashlib.sha256(name.encode(errors="surrogateescape")).hexdigest()[:16]
    keep = NAME_BYTES - len(SUFFIX) - len(digest) - 1
    start = name.encode(errors="surrogateescape")[:keep].decode(errors="ignore")
    return f"{start}-{digest}{SUFFIX}"


def save_predictions(results: list[Prediction], output_dir: Path) -> tuple[Path, Path]:
    """``predictions.csv`` (one row a file: class, the scores, reconstruction, notes, error) and
    ``predictions.json`` (the same records) in ``output_dir``."""
    classes = max((len(r.scores) for r in results), default=0)
    csv_path, json_path = output_dir / "predictions.csv", output_dir / "predictions.json"
    with open(csv_path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(
            ["file", "class", *(f"score_{k}" for k in range(classes)), "reconstruction", "notes", "error"]
        )
        for r in results:
            scores = r.scores or [""] * classes
            writer.writerow(
                [
                    r.path,
                    "" if r.label is None else r.label,
                    *scores,
                    r.reconstruction or "",
                    "; ".join(r.notes),
                    r.error or "",
                ]
            )
    records = [
        {**asdict(r), "path": str(r.path), "reconstruction": r.reconstruction and str(r.reconstruction)}
        for r in results
    ]
    json_path.write_text(json.dumps(records, indent=1) + "\n")
    return csv_path, json_path


def _one_line(text: str) -> str:
    """A path with its tabs, newlines and other control characters escaped (``\\t``), so that a piped
    line stays one line of tab-separated fields; predictions.csv and .json keep the names as they are."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def show_predictions(results: list[Prediction]) -> None:
    """A table on a terminal; elsewhere one tab-separated line a file, nothing cut. Paths are shown as
    they are (``rich.text.Text``: a ``[/y]`` in a folder name is not markup), control characters escaped."""
    rows = [
        (
            _one_line(str(r.path)),
            "" if r.label is None else str(r.label),
            " ".join(f"{s:.2f}" for s in r.scores),
            "; ".join(r.notes),
        )
        for r in results
    ]
    console = rich.get_console()
    if not console.is_terminal:
        for row in rows:
            print("\t".join(row))
        return
    table = rich.table.Table("file", "class", "scores (0-9)", "notes")
    for row in rows:
        table.add_row(*(rich.text.Text(cell) for cell in row))
    console.print(table)
