"""Classifying image files with a trained checkpoint (``src/predict.py``); reading: ``data.image_files``."""

from dataclasses import dataclass
from pathlib import Path

import torch

from capsnet.data.image_files import load_image
from capsnet.viz.charts import image_grid


@dataclass
class Prediction:
    path: Path
    label: int
    scores: list[float]  # capsule lengths (CapsNet) or softmax probabilities (baseline)
    notes: list[str]  # what was done to the image to make it fit
    reconstruction: Path | None = None


@torch.no_grad()
def predict(model, files: list[Path], output_dir: Path, invert: str = "auto") -> list[Prediction]:
    """Classify every file; for a CapsNet also write its reconstruction next to the input, as PNG."""
    model.eval()
    image_shape = tuple(model.hparams.net["image_shape"])
    results = []
    for path in files:
        image, notes = load_image(path, image_shape, invert)
        output = model(image.unsqueeze(0).to(model.device))
        scores = model.scores(output)[0].float()
        if not hasattr(output, "reconstructions"):  # the baseline: logits to probabilities
            scores = scores.softmax(dim=0)
        result = Prediction(path, int(scores.argmax()), [round(float(s), 4) for s in scores], notes)
        if hasattr(output, "reconstructions"):
            result.reconstruction = output_dir / f"{path.stem}_reconstruction.png"
            result.reconstruction.parent.mkdir(parents=True, exist_ok=True)
            pair = torch.stack([image.to(output.reconstructions), output.reconstructions[0]])
            image_grid(pair, columns=2).save(result.reconstruction)
        results.append(result)
    return results
