"""Image helpers: everything is float32 [H, W, C] in [0, 1] internally (C = 3, or 4 with straight
alpha), row 0 at the top; files are PNG (or anything pillow reads) through pillow."""
from __future__ import annotations

import os
from typing import Any, Union

import numpy as np

__all__ = ["to_float_image", "pil_to_float", "load_image", "save_image", "to_uint8", "encode_normals",
           "MAX_IMAGE_SIDE", "MAX_IMAGE_PIXELS"]

MAX_IMAGE_SIDE = 16384  # render_npu's largest resolution
MAX_IMAGE_PIXELS = 1 << 27  # 134 M pixels: 1.6 GB as float32 RGB; larger files are refused unread
_HIGH_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def pil_to_float(im, name: str = "image") -> np.ndarray:
    """PIL image of any common mode -> float32 [H, W, 3|4] in [0, 1] (4 when it has alpha or a
    transparent palette colour), scaled by its bit depth:

    * 8-bit modes (``1``, ``L``, ``P``, ``RGB``, ``CMYK``, ``YCbCr``, ...): ``/ 255``; palette
      images through their palette; ``LA``/``PA``/``RGBa`` keep alpha (straight).
    * 16-bit grayscale (``I;16*``; ``I`` with values in [0, 65535]): ``/ 65535``.
    * 32-bit float (``F``): used as is; values outside [0, 1] or NaN/inf are refused (ValueError:
      their scale is unknown: 0..1, 0..255 and HDR radiance all exist).
    Grayscale is repeated into RGB. Raises ValueError for other modes or ranges."""
    mode = im.mode
    if mode in _HIGH_BIT_MODES:
        arr = np.asarray(im)
        if arr.dtype != np.uint16:
            lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
            if lo < 0 or hi > 65535:
                raise ValueError(f"{name}: 32-bit integer image with values in [{lo}, {hi}]; only 8- and 16-bit "
                                 f"integer images have a known scale")
        out = arr.astype(np.float32) / 65535.0
    elif mode == "F":
        out = np.asarray(im, dtype=np.float32)
        if out.size and not np.isfinite(out).all():
            raise ValueError(f"{name}: float image holds NaN or infinity")
        lo, hi = (float(out.min()), float(out.max())) if out.size else (0.0, 0.0)
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"{name}: float image with values in [{lo:g}, {hi:g}]; texgen reads float images as "
                             f"colours in [0, 1]: rescale it, or save it as 8/16-bit")
    else:
        alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
        try:
            out = np.asarray(im.convert("RGBA" if alpha else "RGB"), dtype=np.float32) / 255.0
        except (ValueError, OSError) as exc:
            raise ValueError(f"{name}: unsupported image mode {mode!r} ({exc})") from exc
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return np.ascontiguousarray(out, dtype=np.float32)


def to_float_image(img: Any, name: str = "image") -> np.ndarray:
    """PIL image, path, numpy (uint8/uint16/float) or torch tensor [H, W], [H, W, 3|4] ->
    float32 [H, W, 3|4] in [0, 1] (a C-contiguous float32 array already in range is returned as
    is, not copied). Raises ValueError for other shapes."""
    if isinstance(img, (str, os.PathLike)):
        return load_image(img)
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    if hasattr(img, "mode") and hasattr(img, "convert"):  # PIL
        return pil_to_float(img, name)
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name}: expected an image [H, W], [H, W, 3] or [H, W, 4], got shape {list(arr.shape)}")
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        out = arr.astype(np.float32) / 65535.0
    elif arr.dtype == np.float32 and arr.flags.c_contiguous and arr.size and 0.0 <= arr.min() and arr.max() <= 1.0:
        return arr  # already in the internal format (NaN fails the range test): no copy
    elif np.issubdtype(arr.dtype, np.floating) or arr.dtype == np.bool_:
        out = arr.astype(np.float32, copy=True)
        if not np.isfinite(out).all():
            np.nan_to_num(out, copy=False)
        np.clip(out, 0.0, 1.0, out=out)
    else:
        raise ValueError(f"{name}: unsupported image dtype {arr.dtype}")
    return np.ascontiguousarray(out)


def load_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """Read an image file -> float32 [H, W, 3|4] in [0, 1] (alpha kept when the file has it; bit
    depths and modes as in :func:`pil_to_float`). Files larger than :data:`MAX_IMAGE_SIDE` on a
    side or :data:`MAX_IMAGE_PIXELS` in all are refused from their header, before decoding."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"image file not found: {path}")
    try:
        with warnings.catch_warnings():
            # pillow's own bomb warning: our cap below gives the one message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im_ctx = Image.open(path)
        with im_ctx as im:
            w, h = im.size
            if max(w, h) > MAX_IMAGE_SIDE or w * h > MAX_IMAGE_PIXELS:
                raise ValueError(f"image {path} is {w}x{h} pixels; texgen reads images up to {MAX_IMAGE_SIDE} "
                                 f"pixels a side and {MAX_IMAGE_PIXELS} pixels in all")
            im.load()
            return pil_to_float(im, name=path)
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image {path} is too large to read safely ({exc})") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"cannot read image {path!r}: {exc}") from exc


def to_uint8(img: np.ndarray) -> np.ndarray:
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    return (np.clip(np.asarray(img, np.float32), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_image(img: Any, path: Union[str, os.PathLike]) -> None:
    """Write float [H, W, 3|4] in [0, 1] (or uint8) as PNG (format from the extension),
    atomically (see :mod:`texgen.files`)."""
    from PIL import Image

    arr = img if (isinstance(img, np.ndarray) and img.dtype == np.uint8) else to_uint8(img)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    save_pil(Image.fromarray(arr), path)


def save_pil(im, path: Union[str, os.PathLike]) -> None:
    """Encode a PIL image in memory (format from the extension), then write it atomically."""
    import io

    from PIL import Image

    from .files import write_file

    path = os.fspath(path)
    fmt = Image.registered_extensions().get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"cannot tell the image format of {path!r} from its extension")
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    write_file(path, buf.getvalue())


def encode_normals(normals: Any, mask: Any = None, background: float = 1.0) -> np.ndarray:
    """Normal map [H, W, 3] in [-1, 1] -> colours ``(n + 1) / 2`` with ``background`` where
    ``mask`` is False (default: where the normal is zero)."""
    if hasattr(normals, "detach"):
        normals = normals.detach().cpu().numpy()
    n = np.asarray(normals, np.float32)
    if mask is None:
        mask = np.any(n != 0, axis=-1)
    elif hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    out = np.where(np.asarray(mask)[..., None], (n + 1.0) * 0.5, np.float32(background))
    return out.astype(np.float32)
