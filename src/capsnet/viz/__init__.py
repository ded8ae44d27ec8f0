"""What the capsules learned, as tensors and pictures, and sending pictures to every logger."""
