"""The explorer's pictures: capsule lengths as bars (HTML), images enlarged, and the couplings of the
primary capsules to one digit capsule as heat maps on their grid (Pillow)."""

import html

import numpy as np
import torch
from PIL import Image, ImageDraw

from capsnet.viz.charts import font, image_grid

# The heat maps' colour: white (no coupling) to this blue (the largest coupling shown).
INK = np.array([31, 84, 180], dtype=np.float32)


def lengths_html(lengths: torch.Tensor, prediction: int) -> str:
    """One bar a digit capsule, as long as ||v_j|| (0 to 1), the predicted one marked."""
    rows = []
    for digit, length in enumerate(lengths.tolist()):
        mark = " predicted" if digit == prediction else ""
        rows.append(
            f'<div class="capsule-length{mark}" data-digit="{digit}" data-length="{length:.4f}">'
            f'<span class="digit">{digit}</span><span class="bar" style="width:{100 * length:.1f}%"></span>'
            f'<span class="value">{length:.3f}</span></div>'
        )
    return (
        f'<div id="capsule-lengths"><p class="prediction">Prediction: <b data-prediction="{prediction}">'
        f"{prediction}</b> (||v|| = {float(lengths[prediction]):.3f})</p>{''.join(rows)}</div>"
    )


LENGTHS_CSS = """
#capsule-lengths .capsule-length { display: flex; align-items: center; gap: 6px; height: 22px; }
#capsule-lengths .digit { width: 1em; font-weight: 600; }
#capsule-lengths .bar { display: inline-block; height: 14px; background: #9db4e0; }
#capsule-lengths .predicted .bar { background: #1f54b4; }
#capsule-lengths .value { font-family: monospace; }
"""


def message_html(text: str) -> str:
    return f'<p class="explorer-message">{html.escape(text)}</p>'


def enlarged(image: torch.Tensor, scale: int = 6) -> Image.Image:
    """An image [C, H, W] in [0, 1] as a picture ``scale`` times larger, each pixel a square."""
    picture = image_grid(image.unsqueeze(0), columns=1, padding=0)
    return picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)


def coupling_picture(maps: torch.Tensor, entropies: list[float], title: str, per_type: bool) -> Image.Image:
    """maps [R, types, rows, columns] (one routing pass a panel) -> picture.

    Summed: each panel is the sum over the capsule types at each grid position. Per type: each panel
    holds one small map a type (8 to a row). One colour scale for every panel, from the smallest value
    shown (white) to the 99th percentile (blue; the few above it blue too), so that the passes compare:
    couplings move little from their uniform start, and a scale from 0, or to a lone outlier, would
    hide how.
    """
    passes, types, rows, columns = maps.shape
    shown = maps.sum(1, keepdim=True) if not per_type else maps  # [R, T', rows, columns]
    cell = 24 if not per_type else 6
    tiles_across = 1 if not per_type else min(types, 8)
    tiles_down = 1 if not per_type else -(-types // tiles_across)
    gap, header = 3, 38
    tile_w, tile_h = columns * cell, rows * cell
    panel_w = tiles_across * (tile_w + gap) - gap
    panel_h = tiles_down * (tile_h + gap) - gap
    values = shown.float().flatten()
    low, high = float(values.min()), float(values.quantile(0.99))
    spread = high - low or 1.0
    heading = f"{title}: white {low:.4g}, darkest {high:.4g} (99th percentile) and above"
    width = max(passes * (panel_w + 20) + 20, round(font(13).getlength(heading)) + 20)
    picture = Image.new("RGB", (width, panel_h + header + 30), "white")
    draw = ImageDraw.Draw(picture)
    draw.text((10, 4), heading, fill="black", font=font(13))
    for r in range(passes):
        left = 20 + r * (panel_w + 20)
        draw.text(
            (left, header - 16), f"pass {r + 1}: H = {entropies[r]:.3f} nats", fill="black", font=font(12)
        )
        for t in range(shown.shape[1]):
            x0 = left + (t % tiles_across) * (tile_w + gap)
            y0 = header + (t // tiles_across) * (tile_h + gap)
            shade = ((shown[r, t].float().cpu().numpy() - low) / spread).clip(0, 1)[..., None]
            colours = (255 - shade * (255 - INK)).round().astype(np.uint8)  # [rows, columns, 3]
            tile = Image.fromarray(colours, "RGB").resize((tile_w, tile_h), Image.Resampling.NEAREST)
            picture.paste(tile, (x0, y0))
            draw.rectangle((x0 - 1, y0 - 1, x0 + tile_w, y0 + tile_h), outline=(200, 200, 200))
    return picture
