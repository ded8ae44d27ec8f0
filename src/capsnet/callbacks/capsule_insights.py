"""A callback that shows what the capsules learned, in every logger of the run (and PNG files).

Every validation epoch (not the sanity check):
- ``val/reconstructions``: the first validation images (fixed: that loader is not shuffled) above
  their reconstructions from the longest capsule.
After testing (the end of ``src/train.py``, or ``src/eval.py`` / ``src/visualize.py``):
- ``test/reconstructions``: the same for the first test images;
- ``test/pose_perturbation`` (paper fig. 4): for each of a few test digits, a block of 16 rows, one
  per DigitCaps dimension, each moved from -0.25 to +0.25 in steps of 0.05 (columns) and decoded;
- ``test/routing_entropy``: mean entropy of the couplings used by each routing iteration, a line chart
  (the scalars ``{val,test}/routing_entropy_iter{r}`` are logged by the module every epoch);
- ``test/final_couplings``: a histogram of the last iteration's coupling coefficients;
- ``test/confusion_matrix``: counts, true class by row (per-class accuracy is logged by the module);
- ``test/capsule_lengths``: distributions of the DigitCaps lengths for the true class and the others;
- ``test/examples``: a table of ``table_size`` test examples, the misclassified ones first: image,
  label, prediction, the 10 capsule lengths, the reconstruction.

W&B gets its own interactive charts, histograms and table; other loggers pictures (``viz.media``).
For other models (the baseline CNN) only the confusion matrix applies. Histograms and the table use
the examples this process saw (under DDP, rank 0's share of the test set); the confusion matrix and
the scalars are over the whole test set (summed over the processes).
"""

import lightning as L
import torch

from capsnet.nn.capsnet import CapsNetOutput
from capsnet.viz import charts
from capsnet.viz.analysis import lengths_by_truth, perturb_and_decode, perturbation_steps
from capsnet.viz.media import MediaPublisher


def _picture(image: torch.Tensor):
    """One image [C, H, W] in [0, 1] as a picture."""
    return charts.image_grid(image[None], columns=1, padding=0)


class CapsuleInsights(L.Callback):
    def __init__(
        self,
        num_images: int = 8,
        perturbed_digits: int = 3,
        perturbation_limit: float = 0.25,
        perturbation_step: float = 0.05,
        max_coupling_values: int = 1_000_000,
        table_size: int = 64,
        png_dir: str | None = None,
    ):
        self.num_images, self.perturbed_digits, self.table_size = num_images, perturbed_digits, table_size
        self.offsets = perturbation_steps(perturbation_limit, perturbation_step)
        self.max_coupling_values = max_coupling_values
        self.publish = MediaPublisher(png_dir)
        self._reset_test()

    def _reset_test(self) -> None:
        self.first_batch = None  # (images, lengths, poses, reconstructions) of the first test batch
        self.true_lengths, self.other_lengths, self.final_couplings = [], [], []
        self.coupling_values = 0
        self.examples = {True: [], False: []}  # misclassified?: [(image, label, prediction, lengths, recon)]

    def _reconstructions(
        self, trainer, key: str, images: torch.Tensor, reconstructions: torch.Tensor
    ) -> None:
        count = min(self.num_images, len(images))
        # One row of inputs, then one row of reconstructions per decoded digit (MultiMNIST: two).
        rows = reconstructions[:count].float()
        rows = rows.transpose(0, 1).flatten(0, 1) if rows.dim() == 5 else rows
        grid = torch.cat([images[:count].float(), rows])
        self.publish.image(trainer, key, charts.image_grid(grid, columns=count))

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        capsules = isinstance(outputs, CapsNetOutput)
        if capsules and batch_idx == 0 and dataloader_idx == 0 and not trainer.sanity_checking:
            self._reconstructions(trainer, "val/reconstructions", batch[0], outputs.reconstructions)

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._reset_test()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if not isinstance(outputs, CapsNetOutput):
            return
        images, labels = batch[0], batch[1]  # MultiMNIST batches also carry the digits alone
        if self.first_batch is None:
            self.first_batch = tuple(
                t.detach()[: max(self.num_images, self.perturbed_digits)].cpu()
                for t in (images, outputs.lengths, outputs.poses, outputs.reconstructions)
            )
        true, others = lengths_by_truth(outputs.lengths.detach().float(), labels)
        self.true_lengths.append(true.cpu())
        self.other_lengths.append(others.cpu())
        if self.coupling_values < self.max_coupling_values:
            final = (
                outputs.couplings[-1]
                .detach()
                .float()
                .flatten()[: self.max_coupling_values - self.coupling_values]
            )
            self.final_couplings.append(final.cpu())
            self.coupling_values += final.numel()
        if labels.dim() == 1:  # one digit an image (not MultiMNIST)
            self._keep_examples(images, labels, outputs.lengths, outputs.reconstructions)

    def _keep_examples(self, images, labels, lengths, reconstructions) -> None:
        if min(len(kept) for kept in self.examples.values()) >= self.table_size:
            return
        predictions = lengths.argmax(dim=1)
        for wrong in (True, False):
            room = self.table_size - len(self.examples[wrong])
            chosen = ((predictions != labels) == wrong).nonzero().flatten()[:room].cpu()
            for i in chosen.tolist():
                example = (images[i], labels[i], predictions[i], lengths[i], reconstructions[i])
                self.examples[wrong].append(tuple(t.detach().float().cpu() for t in example))

    def _examples_table(self, trainer) -> None:
        chosen = (self.examples[True] + self.examples[False])[: self.table_size]
        if not chosen:
            return
        rows = [
            [
                _picture(image),
                int(label),
                int(prediction),
                *[round(float(v), 4) for v in lengths],
                _picture(recon),
            ]
            for image, label, prediction, lengths, recon in chosen
        ]
        classes = len(chosen[0][3])
        columns = ["image", "label", "prediction", *[f"length_{k}" for k in range(classes)], "reconstruction"]
        self.publish.table(trainer, "test/examples", columns, rows)

    def on_test_end(self, trainer, pl_module) -> None:
        if getattr(pl_module, "test_confusion_matrix", None) is not None:
            counts = pl_module.test_confusion_matrix
            self.publish.confusion_matrix(trainer, "test/confusion_matrix", counts, "Test confusion matrix")
        if self.first_batch is None:  # not a CapsNet
            return
        images, lengths, poses, reconstructions = self.first_batch
        self._reconstructions(trainer, "test/reconstructions", images, reconstructions)
        self.publish.image(
            trainer, "test/pose_perturbation", self.pose_perturbation(pl_module, poses, lengths)
        )

        passes = pl_module.net.digits.routing.passes
        entropies = [
            trainer.callback_metrics.get(f"test/routing_entropy_iter{r}") for r in range(1, passes + 1)
        ]
        if all(value is not None for value in entropies):
            title = "Mean coupling entropy per routing iteration"
            values = [float(v) for v in entropies]
            self.publish.line(trainer, "test/routing_entropy", values, title, "iteration", "nats")
        self.publish.histogram(
            trainer, "test/final_couplings", {"c_ij": torch.cat(self.final_couplings)}, "coupling coefficient"
        )
        lengths_by_class = {
            "true class": torch.cat(self.true_lengths),
            "other classes": torch.cat(self.other_lengths),
        }
        self.publish.histogram(trainer, "test/capsule_lengths", lengths_by_class, "DigitCaps length")
        self._examples_table(trainer)

    def pose_perturbation(self, pl_module, poses: torch.Tensor, lengths: torch.Tensor):
        count = min(self.perturbed_digits, len(poses))
        device = pl_module.device
        classes = lengths[:count].argmax(dim=1).to(device)
        with torch.autocast(device.type, enabled=False):
            images = perturb_and_decode(
                pl_module.net.decoder, poses[:count].float().to(device), classes, self.offsets
            )
        return charts.image_grid(images.flatten(0, 2), columns=len(self.offsets))
