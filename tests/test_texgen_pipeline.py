"""texgen.pipeline: configuration, the stages, what the result holds, and errors from view sources."""
import numpy as np
import pytest
import torch

from texgen import BakeSettings, Camera, PipelineConfig, TexturePipeline, TransferSource
from texgen.demo import demo_mesh, ground_truth, solid_color
from conftest import TEXGEN_BACKEND as BACKEND

SMALL = dict(render_size=64, texture_size=48, progress=False, backend=BACKEND)


@pytest.fixture(scope="module")
def scene():
    mesh = demo_mesh(1, ring=False)
    return mesh, ground_truth(mesh, 64, backend=BACKEND)


def test_overrides_reach_the_config_and_bake_settings():
    pipe = TexturePipeline(PipelineConfig(inpaint="pushpull"), bake_exp=2.0, workers=3, texture_size=32)
    cfg = pipe.config
    assert cfg.inpaint == "pushpull" and cfg.texture_size == 32
    assert cfg.bake.bake_exp == 2.0 and cfg.bake.workers == 3
    assert cfg.bake.max_angle == BakeSettings().max_angle
    with pytest.raises(ValueError, match="render_size and texture_size"):
        TexturePipeline(texture_size=1)
    with pytest.raises(TypeError):
        TexturePipeline(no_such_option=1)


def test_view_weights():
    cams, weights = PipelineConfig().resolved_views()
    assert len(cams) == 6 and weights == [1.0, 0.1, 0.5, 0.1, 0.05, 0.05]  # Hunyuan3D-2's
    cams, weights = PipelineConfig(cameras=[Camera(), Camera(0, 180)]).resolved_views()
    assert weights == [1.0, 1.0]
    with pytest.raises(ValueError, match="3 view weights for 2 cameras"):
        PipelineConfig(cameras=[Camera(), Camera(0, 180)], view_weights=[1, 2, 3]).resolved_views()
    with pytest.raises(ValueError, match="at least one camera"):
        PipelineConfig(cameras=[]).resolved_views()


def test_result_holds_every_stage(scene):
    mesh, truth = scene
    res = TexturePipeline(**SMALL)(mesh, TransferSource(truth))
    T = 48
    assert set(res.timings) == {"prepare", "render", "source", "bake", "inpaint"}
    assert all(t >= 0 for t in res.timings.values())
    assert res.texture.shape == res.raw_texture.shape == (T, T, 3) and res.texture.dtype == np.float32
    assert res.baked.shape == res.used.shape == (T, T) and res.baked.dtype == bool
    assert not (res.baked & ~res.used).any()  # only texels inside a UV triangle receive colour
    assert 0.9 < res.coverage <= 1.0  # six views see almost all of a convex blob
    assert np.all(res.raw_texture[~res.baked] == 0)
    np.testing.assert_array_equal(res.texture[res.baked], res.raw_texture[res.baked])  # inpaint fills only holes
    assert res.mesh.texture is res.texture and res.mesh is not mesh and res.mesh.has_uv
    assert len(res.images) == len(res.cameras) == len(res.view_weights) == 6
    assert res.images[0].shape == (64, 64, 3)
    # the texture holds the truth's colour field at each texel's surface point
    tx = res.renderer.texels(res.texture.shape[:2])
    np.testing.assert_array_equal(tx.mask.numpy(), res.used)
    want = solid_color(tx.pos.numpy())
    got = res.texture.reshape(-1, 3)[tx.index.numpy()]
    err = np.abs(got - want).mean()
    assert err < 0.03, err


def test_calls_share_one_bounded_raster_cache_and_repeat_exactly(scene):
    mesh, truth = scene
    pipe = TexturePipeline(**SMALL, cache_entries=64, cache_bytes=3 << 20)
    a = pipe(mesh, TransferSource(truth))
    b = pipe(mesh, TransferSource(truth))
    assert a.renderer.cache is b.renderer.cache is pipe.cache
    assert 0 < pipe.cache.nbytes <= 3 << 20  # each call adds ~1.7 MB of rasters: the bound evicts
    np.testing.assert_array_equal(a.texture, b.texture)


@pytest.mark.parametrize("bad,msg", [
    (lambda batch: None, "returned None images for 6 cameras"),
    (lambda batch: [np.zeros((64, 64, 3), np.float32)] * 5, "returned 5 images for 6 cameras"),
    (lambda batch: 7, "returned int images for 6 cameras"),
])
def test_a_view_source_returning_the_wrong_count_is_named(scene, bad, msg):
    with pytest.raises(ValueError, match=msg):
        TexturePipeline(**SMALL)(scene[0], bad)


def test_a_view_source_sees_the_geometry_and_reference_image(scene):
    mesh, _ = scene
    seen = {}

    def source(batch):
        seen["ref"], seen["normals"] = batch.reference_image, batch.normal_maps
        return [torch.full((64, 64, 3), 0.5)] * len(batch.cameras)

    res = TexturePipeline(**SMALL)(mesh, source, reference_image=np.zeros((4, 4, 3), np.uint8))
    assert seen["ref"].shape == (4, 4, 3) and seen["normals"].shape == (6, 64, 64, 3)
    np.testing.assert_allclose(res.texture[res.used], 0.5, atol=1e-6)  # one grey everywhere
