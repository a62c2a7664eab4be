"""Command line: ``texgen demo``, ``texgen bake MESH --views IMG...``, ``texgen transfer SOURCE TARGET``.

Run ``texgen COMMAND --help`` for the options. Errors in the inputs (unreadable meshes or images,
meshes without faces, a wrong number of images, images of different sizes) print one line
``texgen: error: ...`` and exit with status 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Optional, Sequence

__all__ = ["main", "build_parser"]


def _common(p: argparse.ArgumentParser, render_default: Optional[int], texture_default: int) -> None:
    g = p.add_argument_group("rendering")
    g.add_argument("--device", default="cpu", help="torch device: cpu, npu:0, cuda, ... (default cpu)")
    g.add_argument("--backend", default="auto", choices=["auto", "cpu", "torch", "reference", "ascendc"],
                   help="render_npu backend (default auto)")
    g.add_argument("--render-size", type=int, default=render_default, metavar="PX",
                   help="view render resolution" + (f" (default {render_default})" if render_default else
                                                   " (default: the images' size)"))
    g.add_argument("--texture-size", type=int, default=texture_default, metavar="PX",
                   help=f"texture atlas resolution (default {texture_default})")
    g.add_argument("--cameras", default="hunyuan", metavar="SPEC",
                   help="'hunyuan' (six views: azimuth 0,90,180,270,0,180, elevation 0,0,0,0,90,-90, weights "
                        "1,0.1,0.5,0.1,0.05,0.05) or 'elev:azim[:weight],...' (degrees)")
    g.add_argument("--projection", default="ortho", choices=["ortho", "perspective"])
    g.add_argument("--distance", type=float, default=1.45, help="camera distance (default 1.45)")
    g.add_argument("--ortho-half-width", type=float, default=0.6, help="orthographic half-width (default 0.6)")
    g.add_argument("--fov", type=float, default=50.0, help="perspective vertical field of view, degrees")
    b = p.add_argument_group("baking")
    b.add_argument("--bake-exp", type=float, default=4.0, help="exponent of the cosine weight (default 4)")
    b.add_argument("--max-angle", type=float, default=75.0, help="grazing cut-off, degrees (default 75)")
    b.add_argument("--workers", type=int, default=None, help="threads for per-view baking (default: cores)")
    b.add_argument("--inpaint", default="harmonic", choices=["harmonic", "pushpull", "ns", "telea"])
    b.add_argument("--no-vertex-inpaint", action="store_true", help="skip the mesh-graph vertex inpaint")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="texgen", description="Texture a mesh from per-view images on "
                                     "render_npu (Hunyuan3D-style geometry stage).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    d = sub.add_parser("demo", help="procedural mesh + ground-truth texture -> full pipeline -> round-trip PSNR",
                       description="Build a mesh and a ground-truth texture procedurally, render it from the "
                                   "six views, texture a fresh copy of the geometry from those renders, write "
                                   "result.glb, texture.png, preview.png and print the PSNR on held-out views.")
    d.add_argument("-o", "--out", default="texgen_demo", help="output folder (default ./texgen_demo)")
    d.add_argument("--subdivisions", type=int, default=4, help="icosphere subdivisions of the demo body (default 4)")
    _common(d, 1024, 1024)

    bk = sub.add_parser("bake", help="bake one image per camera onto a mesh",
                        description="Bake user images (one per camera, in camera order) onto MESH.")
    bk.add_argument("mesh", help="mesh file (OBJ, GLB, PLY, ...)")
    bk.add_argument("--views", nargs="+", required=True, metavar="IMG", help="one image per camera, in order")
    bk.add_argument("-o", "--out", default=None, help="output .glb or .obj (default: MESH_textured.glb)")
    _common(bk, None, 2048)

    tr = sub.add_parser("transfer", help="re-bake a textured/vertex-coloured mesh's appearance onto another mesh",
                        description="Render SOURCE (texture or vertex colours) from the cameras and bake the "
                                    "renders onto TARGET's UV atlas (unwrapped if it has none). Both meshes are "
                                    "placed with TARGET's normalisation, so they must overlap.")
    tr.add_argument("source")
    tr.add_argument("target")
    tr.add_argument("-o", "--out", required=True, help="output .glb or .obj")
    _common(tr, 2048, 2048)
    return parser


def _pipeline(args, render_size: int):
    from .bake import BakeSettings
    from .camera import parse_cameras
    from .pipeline import PipelineConfig, TexturePipeline

    extra = {"ortho_half_width": args.ortho_half_width} if args.projection == "ortho" else {"fov": args.fov}
    cams, weights = parse_cameras(args.cameras, args.distance, args.projection, **extra)
    cfg = PipelineConfig(render_size=render_size, texture_size=args.texture_size, cameras=cams,
                         view_weights=weights,
                         bake=BakeSettings(bake_exp=args.bake_exp, max_angle=args.max_angle, workers=args.workers),
                         inpaint=args.inpaint, vertex_inpaint=not args.no_vertex_inpaint, device=args.device,
                         backend=args.backend, progress=not args.no_progress)
    return TexturePipeline(cfg)


def _check_sizes(args) -> None:
    for name in ("render_size", "texture_size"):
        val = getattr(args, name, None)
        if val is not None and not 2 <= val <= 16384:
            raise ValueError(f"--{name.replace('_', '-')} must be in [2, 16384], got {val}")


def _report(result, out: str, t0: float) -> None:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    print(f"texgen: wrote {out} ({result.mesh.num_faces} faces, texture {result.texture.shape[1]}x"
          f"{result.texture.shape[0]}, {100 * result.coverage:.1f}% baked, rest inpainted) in "
          f"{time.perf_counter() - t0:.1f} s [{stages}]")


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, args.render_size, args.texture_size, args.subdivisions, args.device, args.backend,
             args.workers, args.inpaint, progress=not args.no_progress)
    return 0


def _cmd_bake(args) -> int:
    from .images import load_image
    from .mesh import load_mesh
    from .sources import ImageSource

    t0 = time.perf_counter()
    mesh = load_mesh(args.mesh)
    images = [load_image(p) for p in args.views]
    sizes = {img.shape[:2] for img in images}
    if len(sizes) > 1:
        raise ValueError("the view images differ in size: " + ", ".join(
            f"{os.path.basename(p)} {img.shape[1]}x{img.shape[0]}" for p, img in zip(args.views, images)))
    pipe = _pipeline(args, args.render_size or tuple(next(iter(sizes))))
    if len(images) != len(pipe.config.cameras):
        raise ValueError(f"{len(images)} images given for {len(pipe.config.cameras)} cameras "
                         f"(--cameras {args.cameras}): give exactly one image per camera, in camera order")
    out = args.out or os.path.splitext(args.mesh)[0] + "_textured.glb"
    result = pipe(mesh, ImageSource(images))
    result.export(out)
    _report(result, out, t0)
    return 0


def _cmd_transfer(args) -> int:
    from .mesh import load_mesh
    from .sources import TransferSource

    t0 = time.perf_counter()
    source = TransferSource(args.source)
    target = load_mesh(args.target)
    pipe = _pipeline(args, args.render_size)
    result = pipe(target, source)
    result.export(args.out)
    _report(result, args.out, t0)
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .mesh import MeshError

    args = build_parser().parse_args(argv)
    try:
        _check_sizes(args)
        if getattr(args, "out", None) and args.command != "demo":
            ext = os.path.splitext(args.out)[1].lower()
            if ext not in (".glb", ".obj"):
                raise ValueError(f"-o/--out must end in .glb or .obj, got {args.out!r}")
        return {"demo": _cmd_demo, "bake": _cmd_bake, "transfer": _cmd_transfer}[args.command](args)
    except (MeshError, ValueError, FileNotFoundError) as exc:
        print(f"texgen: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("texgen: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
