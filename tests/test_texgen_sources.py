"""texgen view sources: ViewBatch's lazy geometry maps, ImageSource, TransferSource, as_view_source."""
import numpy as np
import pytest
import torch

from texgen import Camera, ImageSource, Renderer, TransferSource, ViewBatch, as_view_source, hunyuan_cameras
from texgen.demo import demo_mesh, ground_truth
from texgen.mesh import MeshError
from conftest import TEXGEN_BACKEND as BACKEND

RES = (40, 48)


@pytest.fixture(scope="module")
def batch_parts():
    mesh = demo_mesh(1, ring=False)
    return mesh, Renderer(mesh, backend=BACKEND), hunyuan_cameras()[:3]


def test_view_batch_maps_equal_the_renderer_and_are_computed_once(batch_parts):
    mesh, r, cams = batch_parts
    batch = ViewBatch(r, cams, RES, workers=3)
    assert len(batch) == 3 and batch.mesh is mesh and batch.resolution == RES
    normals, positions, masks = batch.normal_maps, batch.position_maps, batch.masks
    assert normals.shape == (3, *RES, 3) and positions.shape == (3, *RES, 3) and masks.shape == (3, *RES)
    assert masks.dtype == torch.bool and 0.2 < masks.float().mean() < 0.9
    for i, cam in enumerate(cams):  # threads write each view into its own slice: same as one call
        assert torch.equal(normals[i], r.normal_map(cam, RES))
        assert torch.equal(positions[i], r.position_map(cam, RES))
        assert torch.equal(masks[i], r.mask(cam, RES))
    assert batch.normal_maps is normals and batch.masks is masks  # cached, not recomputed
    n = normals[masks]
    torch.testing.assert_close(n.norm(dim=-1), torch.ones(n.shape[0]), atol=1e-4, rtol=0)
    assert torch.all(normals[~masks] == 0) and torch.all(positions[~masks] == 0)
    # camera space: z points to the viewer, so visible surfaces have z >= 0 (up to interpolation)
    cn = batch.camera_normal_maps[masks]
    assert (cn[:, 2] > -0.2).all() and cn[:, 2].mean() > 0.5


def test_position_images_encode_positions_on_a_background(batch_parts):
    _, r, cams = batch_parts
    batch = ViewBatch(r, cams, RES)
    imgs = batch.position_images(background=0.25)
    assert len(imgs) == 3
    for img, p, m in zip(imgs, batch.position_maps, batch.masks):
        m = m.numpy()
        assert img.dtype == np.float32 and img.shape == (*RES, 3)
        np.testing.assert_allclose(img[m], np.clip(p.numpy()[m] + 0.5, 0, 1), atol=1e-6)
        assert np.all(img[~m] == 0.25)


def test_reference_image_is_converted_to_float(batch_parts):
    _, r, cams = batch_parts
    ref = np.full((8, 8, 3), 255, np.uint8)
    batch = ViewBatch(r, cams, RES, reference_image=ref)
    assert batch.reference_image.dtype == np.float32 and np.all(batch.reference_image == 1.0)


def test_image_source_checks_the_count_and_converts(batch_parts):
    _, r, cams = batch_parts
    imgs = [np.full((RES[0], RES[1], 3), 10 * i, np.uint8) for i in range(3)]
    out = ImageSource(imgs)(ViewBatch(r, cams, RES))
    assert [float(o.max()) for o in out] == pytest.approx([0, 10 / 255, 20 / 255])
    with pytest.raises(ValueError, match="got 2 images for 3 cameras"):
        ImageSource(imgs[:2])(ViewBatch(r, cams, RES))
    with pytest.raises(ValueError, match="sequence of images"):
        ImageSource("front.png")


def test_transfer_source_renders_the_source_appearance(batch_parts):
    mesh, r, cams = batch_parts
    truth = ground_truth(mesh, 64, backend=BACKEND)
    images = TransferSource(truth, background=(0.0, 0.0, 1.0))(ViewBatch(r, cams, RES))
    assert len(images) == 3
    for img, cam in zip(images, cams):
        want = Renderer(truth, backend=BACKEND).render_textured(cam, RES, background=(0.0, 0.0, 1.0))
        assert torch.equal(img, want)  # same geometry and frame: exactly the source's own render
        m = r.mask(cam, RES)
        assert torch.all(img[~m] == torch.tensor([0.0, 0.0, 1.0]))


def test_transfer_source_needs_an_appearance():
    with pytest.raises(MeshError, match="neither a texture"):
        TransferSource(demo_mesh(0, ring=False))


def test_as_view_source():
    fn = lambda batch: []  # noqa: E731
    assert as_view_source(fn) is fn
    assert isinstance(as_view_source([np.zeros((4, 4, 3), np.float32)]), ImageSource)
    with pytest.raises(TypeError, match="view source must be callable"):
        as_view_source(42)
    with pytest.raises(TypeError, match="view source must be callable"):
        as_view_source(Camera())
