"""A callback that shows what the capsules learned, in every logger of the run (and PNG files).

Every validation epoch (not the sanity check):
- ``val/reconstructions``: the first validation images (fixed: that loader is not shuffled) above
  their reconstructions from the longest capsule.
After testing (the end of ``src/train.py``, or ``src/eval.py`` / ``scripts/visualize.py``):
- ``test/reconstructions``: the same for the first test images;
- ``test/pose_perturbation`` (paper fig. 4): for each of a few test digits, a block of 16 rows, one
  per DigitCaps dimension, each moved from -0.25 to +0.25 in steps of 0.05 (columns) and decoded;
- ``test/routing_entropy``: mean entropy of the couplings used by each routing iteration, a chart
  (the scalars ``{val,test}/routing_entropy_iter{r}`` are logged by the module every epoch);
- ``test/final_couplings``: a histogram of the last iteration's coupling coefficients;
- ``test/confusion_matrix``: counts, true class by row (per-class accuracy is logged by the module);
- ``test/capsule_lengths``: distributions of the DigitCaps lengths for the true class and the others.

For other models (the baseline CNN) only the confusion matrix applies. Histograms use the examples
this process saw (under DDP, rank 0's share of the test set); the confusion matrix and the scalars
are over the whole test set.
"""

import lightning as L
import torch

from capsnet.nn.capsnet import CapsNetOutput
from capsnet.viz import charts
from capsnet.viz.analysis import lengths_by_truth, perturb_and_decode, perturbation_steps
from capsnet.viz.media import MediaPublisher


class CapsuleInsights(L.Callback):
    def __init__(
        self,
        num_images: int = 8,
        perturbed_digits: int = 3,
        perturbation_limit: float = 0.25,
        perturbation_step: float = 0.05,
        max_coupling_values: int = 1_000_000,
        png_dir: str | None = None,
    ):
        self.num_images, self.perturbed_digits = num_images, perturbed_digits
        self.offsets = perturbation_steps(perturbation_limit, perturbation_step)
        self.max_coupling_values = max_coupling_values
        self.publish = MediaPublisher(png_dir)
        self._reset_test()

    def _reset_test(self) -> None:
        self.first_batch = None  # (images, lengths, poses, reconstructions) of the first test batch
        self.true_lengths, self.other_lengths, self.final_couplings = [], [], []
        self.coupling_values = 0

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

    def on_test_end(self, trainer, pl_module) -> None:
        if getattr(pl_module, "test_confusion_matrix", None) is not None:
            chart = charts.heatmap(
                pl_module.test_confusion_matrix, "Test confusion matrix", "predicted", "true"
            )
            self.publish.image(trainer, "test/confusion_matrix", chart)
        if self.first_batch is None:  # not a CapsNet
            return
        images, lengths, poses, reconstructions = self.first_batch
        self._reconstructions(trainer, "test/reconstructions", images, reconstructions)
        self.publish.image(
            trainer, "test/pose_perturbation", self.pose_perturbation(pl_module, poses, lengths)
        )

        iterations = pl_module.hparams.routing["iterations"]
        entropies = [
            trainer.callback_metrics.get(f"test/routing_entropy_iter{r}") for r in range(1, iterations + 1)
        ]
        if all(value is not None for value in entropies):
            chart = charts.line_chart(
                [float(v) for v in entropies],
                "Mean coupling entropy per routing iteration",
                "iteration",
                "nats",
            )
            self.publish.image(trainer, "test/routing_entropy", chart)
        self.publish.histogram(
            trainer, "test/final_couplings", {"c_ij": torch.cat(self.final_couplings)}, "coupling coefficient"
        )
        lengths_by_class = {
            "true class": torch.cat(self.true_lengths),
            "other classes": torch.cat(self.other_lengths),
        }
        self.publish.histogram(trainer, "test/capsule_lengths", lengths_by_class, "DigitCaps length")

    def pose_perturbation(self, pl_module, poses: torch.Tensor, lengths: torch.Tensor):
        count = min(self.perturbed_digits, len(poses))
        device = pl_module.device
        classes = lengths[:count].argmax(dim=1).to(device)
        with torch.autocast(device.type, enabled=False):
            images = perturb_and_decode(
                pl_module.net.decoder, poses[:count].float().to(device), classes, self.offsets
            )
        return charts.image_grid(images.flatten(0, 2), columns=len(self.offsets))
