"""Command line: ``texgen demo``, ``texgen bake MESH --views IMG...``, ``texgen transfer SOURCE TARGET``,
``texgen batch MANIFEST --out DIR``, ``texgen unwrap MESH -o OUT``.

Run ``texgen COMMAND --help`` for the options. Every error (unreadable meshes or images, meshes
without faces, a wrong number of images, images of different sizes, out-of-range options, an
unusable device or backend, an output that cannot or must not be written) prints one line
``texgen: error: ...`` and exits with status 2; warnings print ``texgen: warning: ...``. Options and
outputs are checked before any work starts. Outputs are written atomically (a failed run leaves
older files as they were); an output that is one of the inputs is refused, and an OBJ's
``NAME.mtl``/``NAME.png`` are never replaced without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import threading
import time
import warnings
from typing import Optional, Sequence

__all__ = ["main", "console_main", "build_parser"]

EXIT_INTERRUPTED = 130


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


def _outputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--overwrite", action="store_true",
                   help="let an .obj output replace existing NAME.mtl / NAME.png files")
    p.add_argument("--unwrap", default="auto", choices=["auto", "always", "never"],
                   help="auto (default): keep the mesh's own UVs if they are valid (finite, inside [0, 1], no "
                        "overlapping triangles), else unwrap again and say why; always: unwrap; never: keep the "
                        "UVs, refuse invalid or missing ones")


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
    _outputs(bk)

    tr = sub.add_parser("transfer", help="re-bake a textured/vertex-coloured mesh's appearance onto another mesh",
                        description="Render SOURCE (texture or vertex colours) from the cameras and bake the "
                                    "renders onto TARGET's UV atlas (unwrapped if it has none). Both meshes are "
                                    "placed with TARGET's normalisation, so they must overlap.")
    tr.add_argument("source")
    tr.add_argument("target")
    tr.add_argument("-o", "--out", required=True, help="output .glb or .obj")
    _common(tr, 2048, 2048)
    _outputs(tr)

    ba = sub.add_parser("batch", help="run a JSON-lines manifest of bake/transfer/demo jobs, resumably",
                        description="Run every unfinished job of MANIFEST (one JSON object a line: mode, inputs, "
                                    "options, out) into DIR, on a local process pool or a Ray cluster. Failed "
                                    "jobs are recorded in DIR/report.jsonl and retried by the next run; jobs whose "
                                    "outputs are complete (by their recorded sha256) are skipped. See "
                                    "texgen.batch and docs/texgen.md. Exit status 1 when some job failed.")
    ba.add_argument("manifest", help="JSON-lines manifest")
    ba.add_argument("--out", dest="out_dir", required=True, metavar="DIR", help="output folder")
    ba.add_argument("--workers", type=int, default=None, metavar="N",
                    help="jobs at once (default: one per core; 0: one after the other in this process)")
    ba.add_argument("--threads", type=int, default=None, metavar="T",
                    help="threads per job (default: cores // workers, so the workers never oversubscribe)")
    ba.add_argument("--ray", default=None, metavar="ADDRESS|local",
                    help="run the jobs as Ray tasks: 'local' starts a local cluster, else the address of a "
                         "running one (needs pip install \"render_npu[batch]\")")
    ba.add_argument("--no-progress", action="store_true", help="no progress bar")

    un = sub.add_parser("unwrap", help="give a mesh a fresh UV atlas (no texture)",
                        description="UV-unwrap MESH and write it with its atlas (no texture) to OUT. Ctrl-C "
                                    "stops it within a second (exit status 130).")
    un.add_argument("mesh", help="mesh file (OBJ, GLB, PLY, ...)")
    un.add_argument("-o", "--out", required=True, help="output .glb or .obj")
    un.add_argument("--texture-size", type=int, default=2048, metavar="PX",
                    help="atlas resolution the charts are packed for (default 2048)")
    un.add_argument("--padding", type=int, default=None, metavar="TEXELS",
                    help="empty texels between charts (default max(2, size / 512))")
    un.add_argument("--method", default="auto", choices=["auto", "xatlas", "charts"],
                    help="auto: xatlas when no connected part has over 30000 faces, else texgen's chart atlas "
                         "(default auto)")
    un.add_argument("--max-angle", type=float, default=40.0, metavar="DEG",
                    help="charts: largest angle between a face normal and its chart's axis (default 40)")
    un.add_argument("--no-progress", action="store_true", help="no progress bar")
    un.add_argument("--overwrite", action="store_true",
                    help="let an .obj output replace existing NAME.mtl / NAME.png files")
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
                         backend=args.backend, progress=not args.no_progress, unwrap=args.unwrap)
    return TexturePipeline(cfg)


# (dest, low, high, low_open, high_open): every numeric option, checked before any work
_RANGES = (("render_size", 2, 16384, False, False), ("texture_size", 2, 16384, False, False),
           ("distance", 0, 1e6, True, False), ("ortho_half_width", 0, 1e6, True, False),
           ("fov", 0, 180, True, True), ("bake_exp", 0, 64, False, False), ("max_angle", 0, 90, True, False),
           ("workers", 1, 1024, False, False), ("subdivisions", 0, 7, False, False))


def _check_options(args) -> None:
    for dest, lo, hi, lo_open, hi_open in _RANGES:
        val = getattr(args, dest, None)
        if val is None:
            continue
        ok = math.isfinite(val) and (lo < val if lo_open else lo <= val) and (val < hi if hi_open else val <= hi)
        if not ok:
            interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
            kind = "an integer" if isinstance(val, int) else "a finite number"
            raise ValueError(f"--{dest.replace('_', '-')} must be {kind} in {interval}, got {val}")


def _check_device(args) -> None:
    """The torch device exists and can hold a tensor, and the render_npu backend can run here."""
    import torch

    if str(args.device).startswith("npu"):
        try:
            import torch_npu  # noqa: F401  (registers the 'npu' device with torch)
        except ImportError:
            pass
    try:
        dev = torch.device(args.device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"--device {args.device!r} is not a torch device ({_first_line(exc)})") from None
    try:
        torch.empty(1, device=dev)
    except (RuntimeError, AssertionError, ValueError, AttributeError) as exc:
        raise ValueError(f"--device {args.device} is not usable with this torch ({_first_line(exc)})") from None
    import render_npu

    try:  # explicit names: available here and able to take tensors on this device
        render_npu.resolve_backend(args.backend, dev)
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"--backend {args.backend} with --device {args.device}: {_first_line(exc)}") from None


_interrupted = False


def _on_sigint(signum, frame) -> None:
    """Python's own behaviour (raise KeyboardInterrupt), and remember it: trimesh's loaders catch
    BaseException, so an interrupt raised inside them would otherwise be lost and the run go on."""
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _checkpoint() -> None:
    """Stop here if Ctrl-C was pressed, even if some library swallowed the KeyboardInterrupt."""
    if _interrupted:
        raise KeyboardInterrupt


def _first_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _check_demo_folder(out: str) -> None:
    from .files import OutputError, check_folder

    if os.path.exists(out) and not os.path.isdir(out):
        raise OutputError(f"-o/--out {out} is a file; the demo writes into a folder")
    folder = os.path.abspath(out)
    while not os.path.exists(folder):  # the demo creates the missing folders: check where it starts
        folder = os.path.dirname(folder)
    check_folder(folder)


def _report(result, out: str, t0: float) -> None:
    stages = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    print(f"texgen: wrote {out} ({result.mesh.num_faces} faces, texture {result.texture.shape[1]}x"
          f"{result.texture.shape[0]}, {100 * result.coverage:.1f}% baked, rest inpainted) in "
          f"{time.perf_counter() - t0:.1f} s [{stages}]")


def _cmd_demo(args) -> int:
    from .demo import run_demo

    _check_demo_folder(args.out)
    run_demo(args.out, args.render_size, args.texture_size, args.subdivisions, args.device, args.backend,
             args.workers, args.inpaint, progress=not args.no_progress)
    return 0


def _cmd_bake(args) -> int:
    from .files import plan_outputs, with_companions
    from .images import load_image
    from .mesh import load_mesh
    from .sources import ImageSource

    t0 = time.perf_counter()
    out = args.out or os.path.splitext(args.mesh)[0] + "_textured.glb"
    plan_outputs(out, with_companions([args.mesh, *args.views]), args.overwrite)
    mesh = load_mesh(args.mesh)
    images = [load_image(p) for p in args.views]
    _checkpoint()
    sizes = {img.shape[:2] for img in images}
    if len(sizes) > 1:
        raise ValueError("the view images differ in size: " + ", ".join(
            f"{os.path.basename(p)} {img.shape[1]}x{img.shape[0]}" for p, img in zip(args.views, images)))
    pipe = _pipeline(args, args.render_size or tuple(next(iter(sizes))))
    if len(images) != len(pipe.config.cameras):
        raise ValueError(f"{len(images)} images given for {len(pipe.config.cameras)} cameras "
                         f"(--cameras {args.cameras}): give exactly one image per camera, in camera order")
    result = pipe(mesh, ImageSource(images))
    _checkpoint()
    result.export(out, overwrite=args.overwrite)
    _report(result, out, t0)
    return 0


def _cmd_transfer(args) -> int:
    from .files import plan_outputs, with_companions
    from .mesh import load_mesh
    from .sources import TransferSource

    t0 = time.perf_counter()
    plan_outputs(args.out, with_companions([args.source, args.target]), args.overwrite)
    source = TransferSource(args.source)
    target = load_mesh(args.target)
    _checkpoint()
    pipe = _pipeline(args, args.render_size)
    result = pipe(target, source)
    _checkpoint()
    result.export(args.out, overwrite=args.overwrite)
    _report(result, args.out, t0)
    return 0


def _cmd_batch(args) -> int:
    from .batch import run_batch

    summary = run_batch(args.manifest, args.out_dir, workers=args.workers, ray=args.ray, threads=args.threads,
                        progress=not args.no_progress)
    return 1 if summary.failed else 0


def _cmd_unwrap(args) -> int:
    from .export import export_mesh
    from .files import plan_outputs, with_companions
    from .mesh import load_mesh
    from .uv import choose_method, unwrap

    t0 = time.perf_counter()
    plan_outputs(args.out, with_companions([args.mesh]), args.overwrite)
    mesh = load_mesh(args.mesh)
    _checkpoint()
    method = choose_method(mesh) if args.method == "auto" else args.method
    print(f"texgen: unwrapping {args.mesh} ({mesh.num_faces} faces, method {method})", file=sys.stderr, flush=True)
    result = unwrap(mesh, args.texture_size, args.padding, method=args.method, max_angle=args.max_angle,
                    progress=not args.no_progress)
    _checkpoint()
    export_mesh(result, args.out, overwrite=args.overwrite)
    print(f"texgen: wrote {args.out} ({result.num_faces} faces, {len(result.uv)} UV vertices, atlas "
          f"{args.texture_size}^2) in {time.perf_counter() - t0:.1f} s")
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .mesh import MeshError

    global _interrupted
    args = build_parser().parse_args(argv)
    old_show = warnings.showwarning
    warnings.showwarning = _show_warning
    _interrupted = False
    old_sigint = None
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        old_sigint = signal.signal(signal.SIGINT, _on_sigint)
    try:
        if args.command == "batch":  # the jobs' options are checked per manifest line
            return _cmd_batch(args)
        _check_options(args)
        if hasattr(args, "device"):
            _check_device(args)
        return {"demo": _cmd_demo, "bake": _cmd_bake, "transfer": _cmd_transfer,
                "unwrap": _cmd_unwrap}[args.command](args)
    except (MeshError, ValueError, OSError, MemoryError) as exc:
        # one line, whatever the message: the user's shell shows nothing else
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"texgen: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("texgen: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        warnings.showwarning = old_show
        if old_sigint is not None:
            signal.signal(signal.SIGINT, old_sigint)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    text = " ".join(str(message).split())
    if text.startswith("texgen: "):
        text = text[len("texgen: "):]
    print(f"texgen: warning: {text}", file=sys.stderr)


def console_main() -> None:
    """The ``texgen`` command: :func:`main`, then exit. After Ctrl-C it leaves at once
    (``os._exit``): tearing down an interpreter that imported torch takes seconds on a busy machine,
    and an interrupted command should stop within one."""
    rc = main()
    if rc == EXIT_INTERRUPTED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":
    console_main()
