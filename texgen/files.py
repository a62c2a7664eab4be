"""Safe output files: every file is written to a temporary file in its destination folder and
renamed into place only once complete, so a failed run (full disk, Ctrl-C, an exception halfway)
leaves any older file of that name exactly as it was.

:func:`plan_outputs` checks a mesh export before any work starts: the extension, the folder
(exists, is a folder, writable), the companion files of an OBJ (``out.obj`` -> ``out.mtl``,
``out.png``: never replaced unless ``overwrite``), and that no output is one of the inputs.
"""
from __future__ import annotations

import os
import tempfile
from typing import Dict, Iterable, List, Tuple, Union

__all__ = ["OutputError", "write_files", "write_file", "plan_outputs", "obj_companions", "check_folder",
           "same_file"]

PathLike = Union[str, os.PathLike]


class OutputError(ValueError):
    """An output that cannot or must not be written (the message says which and why)."""


def _write_all(f, data: bytes) -> None:
    """One place for the actual write (tests replace it to simulate a disk that fills halfway)."""
    f.write(data)


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)


def write_files(files: Dict[str, Union[bytes, str]]) -> List[str]:
    """Write ``{path: data}`` all-or-nothing as far as the file system allows: every file goes to a
    temporary file next to its destination first; only when all are complete are they renamed into
    place (``os.replace``, atomic per file). On any failure the temporaries are removed, no
    destination has changed, and :class:`OutputError` names the file. An existing destination keeps
    its permission bits. Returns the paths written."""
    temps: List[tuple] = []
    try:
        for path, data in files.items():
            path = os.fspath(path)
            folder = os.path.dirname(os.path.abspath(path))
            if isinstance(data, str):
                data = data.encode("utf-8")
            try:
                fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".part", dir=folder)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {_describe(exc)}") from exc
            temps.append((tmp, path))
            try:
                with os.fdopen(fd, "wb") as f:
                    _write_all(f, data)
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    mode = os.stat(path).st_mode & 0o7777
                except FileNotFoundError:
                    umask = os.umask(0)
                    os.umask(umask)
                    mode = 0o666 & ~umask
                os.chmod(tmp, mode)
            except OSError as exc:
                raise OutputError(f"cannot write {path}: {_describe(exc)}") from exc
        for tmp, path in temps:
            os.replace(tmp, path)
        temps = []
        return [p for p in files]
    finally:
        for tmp, _ in temps:  # only left when something failed
            try:
                os.unlink(tmp)
            except OSError:
                pass


def write_file(path: PathLike, data: Union[bytes, str]) -> str:
    """:func:`write_files` for one file."""
    write_files({os.fspath(path): data})
    return os.fspath(path)


def same_file(a: PathLike, b: PathLike) -> bool:
    """Whether two paths name one file (the same inode when both exist, else the same real path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def check_folder(folder: PathLike, what: str = "output folder") -> str:
    """Raise :class:`OutputError` unless ``folder`` exists, is a folder and a file can be created
    in it (tried for real, with a temporary file: permission bits do not tell the whole story)."""
    folder = os.fspath(folder) or "."
    if not os.path.exists(folder):
        raise OutputError(f"{what} {folder} does not exist")
    if not os.path.isdir(folder):
        raise OutputError(f"{what} {folder} is not a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".texgen-probe.", dir=folder)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OutputError(f"cannot write into {what} {folder}: {_describe(exc)}") from exc
    return folder


def obj_companions(path: PathLike) -> List[str]:
    """The files an OBJ export writes besides ``path``: ``stem.mtl`` and ``stem.png``."""
    stem = os.path.splitext(os.fspath(path))[0]
    return [stem + ".mtl", stem + ".png"]


def plan_outputs(path: PathLike, inputs: Iterable[PathLike] = (), overwrite: bool = False,
                 option: str = "-o/--out", kind: str = "") -> List[str]:
    """Check a mesh export to ``path`` before any work: returns every file it will write.

    Refused (:class:`OutputError`): an extension other than ``.glb``/``.obj``; ``path`` naming a
    folder; a folder that is missing or not writable; any output that is one of ``inputs``; an
    OBJ companion (``.mtl``, ``.png``) that already exists, unless ``overwrite`` (``path`` itself
    is the file the user named: it is replaced, atomically). ``kind`` ".glb"/".obj" forces the
    format whatever the extension (the API's ``export_glb``/``export_obj``)."""
    path = os.fspath(path)
    ext = kind or os.path.splitext(path)[1].lower()
    if os.path.isdir(path):
        raise OutputError(f"{option} {path} is a folder; give a file name ending in .glb or .obj")
    if ext not in (".glb", ".obj"):
        raise OutputError(f"{option} must end in .glb or .obj, got {path!r}")
    check_folder(os.path.dirname(os.path.abspath(path)))
    outs = [path] + (obj_companions(path) if ext == ".obj" else [])
    for out in outs:
        for inp in inputs:
            if inp is not None and os.path.exists(out) and same_file(out, inp):
                raise OutputError(f"{option} {path} would overwrite the input {os.fspath(inp)}"
                                  + ("" if out == path else f" (the OBJ writes {os.path.basename(out)})")
                                  + "; choose another output name")
    if not overwrite:
        taken = [o for o in outs[1:] if os.path.lexists(o)]
        if taken:
            raise OutputError(f"{option} {path} would replace {', '.join(taken)}, which already "
                              f"exist{'s' if len(taken) == 1 else ''}; pass --overwrite or choose another name")
    return outs



def with_companions(paths: Iterable[PathLike]) -> List[str]:
    """``paths`` plus, for each OBJ among them, the existing material libraries and texture files
    it names (see :func:`obj_material_files`): all of them are inputs that no output may replace."""
    out: List[str] = []
    for p in paths:
        p = os.fspath(p)
        out.append(p)
        if p.lower().endswith(".obj"):
            mtls, textures = obj_material_files(p)
            out.extend(f for f in mtls + textures if os.path.isfile(f))
    return out


def obj_material_files(path: PathLike) -> Tuple[List[str], List[str]]:
    """(material libraries named by ``mtllib``, texture files named by ``map_*`` in those that
    exist), resolved next to the file that names them, whether or not they exist."""
    path = os.fspath(path)
    mtls = _referenced(path, ("mtllib",))
    textures = [t for m in mtls if os.path.isfile(m) for t in _referenced(m, ("map_",))]
    return mtls, textures


def _referenced(path: str, keys) -> List[str]:
    """File names after ``keys`` at the start of lines of a text file (OBJ/MTL), resolved in its
    folder; only the last word counts (options such as ``-s 1 1 1`` come before the name)."""
    folder = os.path.dirname(os.path.abspath(path))
    found = []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            for line in f:
                word = line.split(None, 1)
                if len(word) == 2 and any(word[0].startswith(k) for k in keys):
                    found.append(os.path.join(folder, word[1].split()[-1]))
    except OSError:
        pass
    return found
