"""Pictures as PIL images, drawn with Pillow alone (already a torchvision dependency): image grids,
a line chart, overlaid histograms and an annotated heatmap. Enough for the capsule insights in W&B,
TensorBoard and PNG files, without a plotting library."""

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid

WIDTH, HEIGHT = 640, 400
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 70, 20, 40, 50
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40))


def font(size: int = 14) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def image_grid(images: torch.Tensor, columns: int, padding: int = 2) -> Image.Image:
    """Images [N, C, H, W] in [0, 1], laid out ``columns`` per row -> RGB picture.

    Size: columns * (W + padding) + padding wide, rows * (H + padding) + padding high.
    """
    grid = make_grid(images.detach().float().cpu().clamp(0, 1), nrow=columns, padding=padding, pad_value=1.0)
    return Image.fromarray((grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


class _Axes:
    """A plotting area mapping data coordinates to pixels, with ticks, labels and a title."""

    def __init__(self, title: str, xlabel: str, ylabel: str, x_range, y_range, x_ticks: bool = True):
        self.image = Image.new("RGB", (WIDTH, HEIGHT), "white")
        self.draw = ImageDraw.Draw(self.image)
        self.x_range, self.y_range = _padded(*x_range), _padded(*y_range)
        self.left, self.right = MARGIN_LEFT, WIDTH - MARGIN_RIGHT
        self.top, self.bottom = MARGIN_TOP, HEIGHT - MARGIN_BOTTOM
        self.draw.rectangle((self.left, self.top, self.right, self.bottom), outline="black")
        self.draw.text((WIDTH / 2, 8), title, fill="black", font=font(16), anchor="mt")
        self.draw.text((WIDTH / 2, HEIGHT - 6), xlabel, fill="black", font=font(), anchor="mb")
        self.draw.text((4, self.top - 6), ylabel, fill="black", font=font(), anchor="lb")
        for value in np.linspace(*self.x_range, 5) if x_ticks else []:
            self.draw.text(
                (self.x(value), self.bottom + 4), f"{value:.3g}", fill="black", font=font(12), anchor="mt"
            )
        for value in np.linspace(*self.y_range, 5):
            self.draw.text(
                (self.left - 4, self.y(value)), f"{value:.3g}", fill="black", font=font(12), anchor="rm"
            )

    def x(self, value: float) -> float:
        low, high = self.x_range
        return self.left + (value - low) / (high - low) * (self.right - self.left)

    def y(self, value: float) -> float:
        low, high = self.y_range
        return self.bottom - (value - low) / (high - low) * (self.bottom - self.top)

    def legend(self, names: Sequence[str]) -> None:
        for index, name in enumerate(names):
            y = self.top + 8 + 18 * index
            left = self.right - 12 - max(self.draw.textlength(n, font=font(12)) for n in names) - 24
            self.draw.rectangle((left, y, left + 12, y + 12), fill=COLOURS[index % len(COLOURS)])
            self.draw.text((left + 18, y + 6), name, fill="black", font=font(12), anchor="lm")


def _padded(low: float, high: float) -> tuple[float, float]:
    return (low - 0.5, high + 0.5) if high - low < 1e-9 else (low, high)


def line_chart(
    values: Sequence[float], title: str, xlabel: str, ylabel: str, x_start: int = 1
) -> Image.Image:
    """One series of values against x = x_start, x_start + 1, ... (markers and lines)."""
    xs = np.arange(x_start, x_start + len(values))
    axes = _Axes(title, xlabel, ylabel, (xs[0], xs[-1]), (min(0.0, min(values)), max(values) * 1.05))
    points = [(axes.x(x), axes.y(v)) for x, v in zip(xs, values, strict=True)]
    if len(points) > 1:
        axes.draw.line(points, fill=COLOURS[0], width=3)
    for px, py in points:
        axes.draw.ellipse((px - 5, py - 5, px + 5, py + 5), fill=COLOURS[0])
    return axes.image


def series_chart(
    x_labels: Sequence[str], series: dict[str, Sequence[float | None]], title: str, xlabel: str, ylabel: str
) -> Image.Image:
    """Lines over categorical x positions, one per series (None: no point there), with a legend."""
    values = [v for points in series.values() for v in points if v is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    spread = (high - low) * 0.1 or 0.01
    axes = _Axes(
        title, xlabel, ylabel, (0, max(len(x_labels) - 1, 1)), (low - spread, high + spread), x_ticks=False
    )
    for index, label in enumerate(x_labels):
        axes.draw.text((axes.x(index), axes.bottom + 4), label, fill="black", font=font(12), anchor="mt")
    for number, points in enumerate(series.values()):
        colour = COLOURS[number % len(COLOURS)]
        xy = [(axes.x(i), axes.y(v)) for i, v in enumerate(points) if v is not None]
        if len(xy) > 1:
            axes.draw.line(xy, fill=colour, width=2)
        for px, py in xy:
            axes.draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=colour)
    axes.legend(list(series))
    return axes.image


def stack_vertically(images: Sequence[Image.Image]) -> Image.Image:
    """Pictures one above the other, left-aligned, on white."""
    canvas = Image.new("RGB", (max(i.width for i in images), sum(i.height for i in images)), "white")
    top = 0
    for image in images:
        canvas.paste(image, (0, top))
        top += image.height
    return canvas


def histogram_chart(
    series: dict[str, torch.Tensor], title: str, xlabel: str, bins: int = 40, value_range=(0.0, 1.0)
) -> Image.Image:
    """Overlaid outline histograms, each normalised to a density, of one or more series of values."""
    edges = np.linspace(*value_range, bins + 1)
    densities = {
        name: np.histogram(values.detach().float().cpu().numpy(), bins=edges, density=True)[0]
        for name, values in series.items()
    }
    top = max(float(d.max()) for d in densities.values()) * 1.05 or 1.0
    axes = _Axes(title, xlabel, "density", value_range, (0.0, top))
    for index, density in enumerate(densities.values()):
        steps = []
        for left, right, height in zip(edges[:-1], edges[1:], density, strict=True):
            steps += [(axes.x(left), axes.y(height)), (axes.x(right), axes.y(height))]
        axes.draw.line(steps, fill=COLOURS[index % 4], width=2)
    axes.legend(list(densities))
    return axes.image


def heatmap(matrix: torch.Tensor, title: str, xlabel: str, ylabel: str, cell: int = 44) -> Image.Image:
    """A square matrix of counts as shaded cells with the counts written in them (row = ylabel)."""
    counts = matrix.detach().cpu().long()
    size = counts.shape[0]
    left, top = 60, 50
    image = Image.new("RGB", (left + size * cell + 20, top + size * cell + 40), "white")
    draw = ImageDraw.Draw(image)
    draw.text((image.width / 2, 8), title, fill="black", font=font(16), anchor="mt")
    draw.text((left + size * cell / 2, image.height - 6), xlabel, fill="black", font=font(), anchor="mb")
    draw.text((4, top - 16), ylabel, fill="black", font=font(), anchor="lm")
    # Shade by each row's fraction, so every class reads alike whatever its size.
    fractions = counts.float() / counts.sum(dim=1, keepdim=True).clamp_min(1)
    for row in range(size):
        draw.text((left - 6, top + (row + 0.5) * cell), str(row), fill="black", font=font(12), anchor="rm")
        draw.text((left + (row + 0.5) * cell, top - 4), str(row), fill="black", font=font(12), anchor="mb")
        for column in range(size):
            shade = int(255 * (1 - float(fractions[row, column]) ** 0.5))
            box = (left + column * cell, top + row * cell, left + (column + 1) * cell, top + (row + 1) * cell)
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            ink = "white" if shade < 128 else "black"
            centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
            draw.text(centre, str(int(counts[row, column])), fill=ink, font=font(12), anchor="mm")
    return image
