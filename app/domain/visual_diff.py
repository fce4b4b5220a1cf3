"""What changed between two screenshots of a page: the share of pixels that differ, and an
overlay of the new picture, dimmed, with those pixels in red.

The pictures come out of a pod in a preview's namespace, so they are untrusted input: each
must be a PNG of exactly the size the browser was asked for, which also bounds what
decoding it may cost.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image, ImageChops, UnidentifiedImageError

# A channel that moved by more than this (of 255) counts as changed: the same page drawn
# twice gives the same pixels; the margin is for anti-aliasing that lands a shade apart.
TOLERANCE = 16
HIGHLIGHT = (230, 0, 60)
MAX_PNG_BYTES = 8 * 1024 * 1024


class NotAScreenshot(ValueError):
    """The bytes are not a PNG of the expected size."""


@dataclass(frozen=True)
class Comparison:
    changed_share: float  # 0.0 to 1.0
    overlay_png: bytes | None  # None when nothing changed


def checked_png(data: bytes, size: tuple[int, int]) -> bytes:
    """`data` when it is a PNG of `size` pixels; NotAScreenshot otherwise."""
    if len(data) > MAX_PNG_BYTES:
        raise NotAScreenshot(f"larger than {MAX_PNG_BYTES // 1024 // 1024} MiB")
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            if image.size != size:
                raise NotAScreenshot(f"{image.size[0]}x{image.size[1]} pixels, not {size[0]}x{size[1]}")
            image.load()  # a truncated or corrupt body fails here, not later
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise NotAScreenshot(f"not a readable PNG ({error})") from None
    return data


def _rgb(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
        return image.convert("RGB")


def compare(before: bytes, after: bytes) -> Comparison:
    """`after` against `before` (both checked PNGs). Pictures of different sizes are compared
    on the larger canvas: what only one of them covers counts as changed."""
    old, new = _rgb(before), _rgb(after)
    width, height = max(old.width, new.width), max(old.height, new.height)
    if old.size != new.size:
        old, new = _on_canvas(old, (width, height)), _on_canvas(new, (width, height))
    difference = ImageChops.difference(old, new)
    # The largest channel change per pixel, then changed (255) or not (0).
    per_pixel = ImageChops.lighter(ImageChops.lighter(*difference.split()[:2]), difference.split()[2])
    mask = per_pixel.point(lambda level: 255 if level > TOLERANCE else 0, mode="L")
    changed = mask.histogram()[255]
    share = changed / (width * height)
    if not changed:
        return Comparison(0.0, None)
    dimmed = Image.blend(new, Image.new("RGB", new.size, (255, 255, 255)), 0.6)
    dimmed.paste(Image.new("RGB", new.size, HIGHLIGHT), mask=mask)
    buffer = io.BytesIO()
    dimmed.save(buffer, format="PNG", optimize=True)
    return Comparison(share, buffer.getvalue())


def _on_canvas(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    canvas = Image.new("RGB", size, (0, 0, 0))
    canvas.paste(image, (0, 0))
    return canvas
