"""Input files for texgen's CLI tests: a sphere away from the origin and one flat-colour image
per default camera."""
import numpy as np
import trimesh
from PIL import Image


def write_bake_inputs(folder, size: int = 64):
    """Write ``sphere.ply`` (icosphere, radius 3, centred at (1, 2, 3)) and ``v0.png`` ..
    ``v5.png`` (``size`` x ``size``, one colour each) into ``folder``; returns the view paths."""
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=3.0)
    sphere.apply_translation((1, 2, 3))
    sphere.export(folder / "sphere.ply")
    views = []
    for i in range(6):
        img = np.zeros((size, size, 3), np.uint8)
        img[...] = (40 * i, 255 - 40 * i, 128)
        Image.fromarray(img).save(folder / f"v{i}.png")
        views.append(folder / f"v{i}.png")
    return views
