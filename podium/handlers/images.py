"""Binary image bodies for the tensor handlers: the ``image`` option and the decoding of
PNG, JPEG (anything Pillow reads) or raw pixels into one float32 instance."""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from podium.errors import InvalidInput


@dataclass(frozen=True)
class ImageOptions:
    """How a binary image body becomes one instance."""

    width: int
    height: int
    mode: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    layout: str = "hwc"

    @classmethod
    def parse(cls, options: Mapping[str, Any]) -> ImageOptions:
        try:
            width, height = int(options["width"]), int(options["height"])
        except (KeyError, TypeError, ValueError):
            raise ValueError('the "image" option needs integer "width" and "height"') from None
        layout = str(options.get("layout", "hwc")).lower()
        if layout not in ("hwc", "chw") or width < 1 or height < 1:
            raise ValueError('"image": layout must be "hwc" or "chw", sizes positive')
        return cls(
            width=width,
            height=height,
            mode=str(options.get("mode", "RGB")),
            scale=float(options.get("scale", 1.0)),
            mean=_floats(options.get("mean")),
            std=_floats(options.get("std")),
            layout=layout,
        )

    @property
    def channels(self) -> int:
        return {"1": 1, "L": 1, "I": 1, "F": 1, "LA": 2, "RGB": 3, "YCbCr": 3}.get(self.mode, 4)


def _floats(value: Any) -> tuple[float, ...]:
    if value is None:
        return ()
    if isinstance(value, int | float):
        return (float(value),)
    return tuple(float(v) for v in value)


def decode_image(body: bytes, options: ImageOptions, max_elements: int) -> np.ndarray:
    """PNG/JPEG/... bytes (or exactly height x width x channels raw bytes) → float32 pixels."""
    from PIL import Image, UnidentifiedImageError

    raw_size = options.width * options.height * options.channels
    try:
        with Image.open(io.BytesIO(body)) as image:
            if image.width * image.height > max_elements:
                raise InvalidInput(
                    f"image is {image.width}x{image.height}, more than {max_elements} pixels"
                )
            converted = image.convert(options.mode)
            if converted.size != (options.width, options.height):
                converted = converted.resize(
                    (options.width, options.height), Image.Resampling.BILINEAR
                )
            pixels = np.asarray(converted, dtype=np.float32)
    except UnidentifiedImageError:
        if len(body) != raw_size:
            raise InvalidInput(
                f"body is neither an image Pillow can read (PNG, JPEG, ...) nor {raw_size} "
                f"raw pixel bytes ({options.height}x{options.width}x{options.channels}); "
                f"got {len(body)} bytes"
            ) from None
        pixels = np.frombuffer(body, dtype=np.uint8).astype(np.float32)
        shape = (options.height, options.width, options.channels)
        pixels = pixels.reshape(shape if options.channels > 1 else shape[:2])
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise InvalidInput(f"cannot decode the image: {error}") from None
    result: np.ndarray = pixels * np.float32(options.scale)
    if options.mean:
        result = result - np.asarray(options.mean, dtype=np.float32)
    if options.std:
        result = result / np.asarray(options.std, dtype=np.float32)
    return result.astype(np.float32)
