"""A file to take home: one self-contained HTML page showing the head in 3D, to turn and zoom, a button per state.

:func:`write_share` writes the head and its textures as a GLB (glTF 2.0 binary, written here with ``struct`` and
``json``; trimesh's exporter knows no material variants) and embeds it, base64, into an HTML page with Google's
``<model-viewer>`` inlined from ``vendor/model-viewer.min.js`` (a pinned npm build that bundles three.js; see
``vendor/README.md``). Every state (before, each session, fresh...) is one material of the glTF extension
``KHR_materials_variants`` over the same geometry; a row of buttons switches them, and so does the page address:
``page.html#variant=session%203`` opens on that state. The page fetches nothing: the model is a ``data:`` URL, the
viewer inline, and a Content-Security-Policy forbids any network access (it opens offline in any browser).

The look is ``COLOR_0 x baseColorTexture``: the skin colour per vertex (converted from sRGB to linear, as glTF wants
vertex colours) times the state's texture, a multiplicative filter in sRGB (white = bare skin, darker = pigment).

Coordinates in the GLB stay what they are everywhere in scalp3d, millimetres in the scan's own axes; the node's
matrix carries the rest (mm to m, the landmark frame turned to glTF's +Y up with the face towards +Z where
model-viewer's camera starts, the head's bounding box centred), and ``asset.extras.scalp3d`` records it.
"""
from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import struct
from pathlib import Path

import numpy as np

from scalp3d.errors import InputError, Scalp3dError

VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
MODEL_VIEWER_JS = VENDOR_DIR / "model-viewer.min.js"
MODEL_VIEWER_VERSION = "4.4.0"
MODEL_VIEWER_SHA256 = "18b2e711035aa4705ee281530a55dc2338ff05eed3d70ae16d54105282a75ed5"

#: JPEG quality of the textures (PIL's scale, 1-95)
JPEG_QUALITY = 90
#: textures are never halved below this side, pixels: past it the budget is spent by the geometry alone
MIN_TEXTURE_PX = 64
#: a texture of one colour is written at this side, pixels
UNIFORM_TEXTURE_PX = 4
#: the skin's material: rough, not metallic
ROUGHNESS = 0.7
#: the page's background colour (the test looks for it)
BACKGROUND_RGB = (43, 47, 54)
#: glTF's axes (+X, +Y up, +Z towards the viewer) in the landmark frame's (x right, y forward, z up): the face looks
#: at +Z, so +X is the patient's left, on the viewer's right
_GLTF_FROM_FRAME = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])

# glTF constants
_FLOAT, _USHORT, _UINT, _BYTE = 5126, 5123, 5125, 5120
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_LINEAR, _LINEAR_MIPMAP_LINEAR, _CLAMP = 9729, 9987, 33071

# Content-Security-Policy of the page: inline code only (and WebAssembly: model-viewer compiles its bundled meshopt
# decoder at start); data:/blob: for the model and its images; nothing else, so the browser itself blocks any fetch
_CSP = ("default-src 'none'; script-src 'unsafe-inline' 'wasm-unsafe-eval'; style-src 'unsafe-inline'; "
        "img-src data: blob:; connect-src data: blob:; media-src data: blob:; worker-src blob:; font-src data:")


def write_share(out_html, *, vertices, faces, uv, normals, colors, textures, frame, labels=None, keep_faces=None,
                glb_path=None, title="scalp3d preview", max_texture_px=4096, max_bytes=15_000_000,
                initial=None, camera_orbit=None) -> dict:
    """Write one self-contained HTML file (and, with ``glb_path``, the GLB alone) showing the head in 3D.

    vertices (k,3) mm; faces (m,3); uv (k,2) in [0,1], v=0 at the image's bottom row; normals (k,3) unit; colors
    (k,3) uint8 sRGB skin colour; textures: ordered name -> (H,W,3) uint8 filter image, one state (material variant)
    each, in button order; frame: (origin (3,), R (3,3)) rows x right, y forward (nose), z up in scan axes; labels:
    the buttons' names (default the texture names); keep_faces: (m,) bool, faces to keep (unused vertices are
    dropped); initial: the state shown first (default the first texture); camera_orbit: model-viewer's starting
    orbit, e.g. "25deg 50deg auto" (default: from the front).

    Textures are scaled down (in linear light, so the average tone is kept) to ``max_texture_px`` on their longer
    side, then halved together until the HTML fits in ``max_bytes``; a :class:`Scalp3dError` if it never does.

    Returns {"bytes": HTML size, "glb_bytes", "texture_px": longest texture side used, "texture_sizes": {name: (w, h)},
    "variants": [names], "triangles", "vertices", "path", "glb_path"}.
    """
    v, f, uv, n, c, _ = _checked_mesh(vertices, faces, uv, normals, colors, keep_faces)
    names, labels, initial = _checked_states(textures, labels, initial)
    origin, rot = _checked_frame(frame)
    matrix = _node_matrix(v, origin, rot)
    if max_texture_px < 1 or max_bytes < 1:
        raise InputError(f"max_texture_px ({max_texture_px}) and max_bytes ({max_bytes}) must be positive")

    images = {name: _fit(np.asarray(textures[name]), int(max_texture_px), name) for name in names}
    geometry = _geometry(v, f, uv, n, c)
    js = _model_viewer_js()
    while True:
        jpegs = {name: _jpeg(img) for name, img in images.items()}
        glb = _glb(geometry, jpegs, names, names.index(initial), matrix)
        page = _page(glb, js, names, labels, initial, title, camera_orbit).encode("utf-8")
        side = max(max(img.shape[:2]) for img in images.values())
        if len(page) <= max_bytes:
            break
        if side <= MIN_TEXTURE_PX:
            raise Scalp3dError(f"the share file needs {len(page) / 1e6:.1f} MB even with {side}-pixel textures, over "
                               f"its budget of {max_bytes / 1e6:.1f} MB: raise max_bytes or share a coarser mesh")
        images = {name: _halve(img) for name, img in images.items()}

    from scalp3d.fileio import write_bytes

    write_bytes(out_html, page)
    if glb_path is not None:
        write_bytes(glb_path, glb)
    return {"bytes": len(page), "glb_bytes": len(glb), "texture_px": int(side),
            "texture_sizes": {name: (int(img.shape[1]), int(img.shape[0])) for name, img in images.items()},
            "variants": list(names), "triangles": int(len(f)), "vertices": int(len(v)),
            "path": str(out_html), "glb_path": None if glb_path is None else str(glb_path)}


# --- inputs ----------------------------------------------------------------------------------------------------------

def _checked_mesh(vertices, faces, uv, normals, colors, keep_faces):
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces)
    k = len(v)
    shapes = {"vertices": (v, 3), "uv": (np.asarray(uv), 2), "normals": (np.asarray(normals), 3),
              "colors": (np.asarray(colors), 3)}
    for name, (a, cols) in shapes.items():
        if a.ndim != 2 or a.shape[1] != cols or len(a) != k:
            raise InputError(f"share: {name} has shape {a.shape}, expected ({k}, {cols})")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0 or not np.issubdtype(f.dtype, np.integer):
        raise InputError(f"share: faces have shape {f.shape} and type {f.dtype}, expected (m, 3) integers, m > 0")
    if f.min() < 0 or f.max() >= k:
        raise InputError(f"share: faces index vertices {f.min()}..{f.max()}, the mesh has {k}")
    if not np.isfinite(v).all():
        raise InputError("share: vertices hold NaN or infinite coordinates")
    if np.asarray(colors).dtype != np.uint8:
        raise InputError(f"share: colors are {np.asarray(colors).dtype}, expected uint8 sRGB (0-255)")
    if keep_faces is not None:
        keep = np.asarray(keep_faces, dtype=bool)
        if keep.shape != (len(f),):
            raise InputError(f"share: keep_faces has shape {keep.shape}, expected ({len(f)},)")
        f = f[keep]
        if len(f) == 0:
            raise InputError("share: keep_faces keeps no face")
    used = np.unique(f)
    remap = np.full(k, -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return (v[used], remap[f], np.asarray(uv, dtype=np.float64)[used], np.asarray(normals, dtype=np.float64)[used],
            np.asarray(colors)[used], used)


def _checked_states(textures, labels, initial):
    names = [str(name) for name in textures]
    if not names:
        raise InputError("share: no texture given (one per state: before, each session...)")
    if len(set(names)) != len(names):
        raise InputError("share: two states have the same name")
    for name in textures:
        img = np.asarray(textures[name])
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8 or min(img.shape[:2]) < 1:
            raise InputError(f"share: texture {name!r} has shape {img.shape} and type {img.dtype}, expected "
                             f"(H, W, 3) uint8")
    labels = names if labels is None else [str(x) for x in labels]
    if len(labels) != len(names):
        raise InputError(f"share: {len(labels)} labels for {len(names)} textures")
    initial = names[0] if initial is None else str(initial)
    if initial not in names:
        raise InputError(f"share: initial state {initial!r} is none of {names}")
    return names, labels, initial


def _checked_frame(frame):
    origin, rot = frame
    origin = np.asarray(origin, dtype=np.float64).reshape(3)
    rot = np.asarray(rot, dtype=np.float64).reshape(3, 3)
    if not np.allclose(rot @ rot.T, np.eye(3), atol=1e-3) or np.linalg.det(rot) < 0:
        raise InputError("share: the frame's R is not a rotation (rows x right, y forward, z up, orthonormal and "
                         "right-handed)")
    return origin, rot


def _node_matrix(v, origin, rot):
    """The node's 4x4 matrix: scan mm -> glTF metres, head upright (+Y), face towards +Z, bounding box centred."""
    local = (v - origin) @ rot.T
    centre = origin + rot.T @ ((local.min(axis=0) + local.max(axis=0)) / 2)
    turn = 0.001 * _GLTF_FROM_FRAME @ rot
    m = np.eye(4)
    m[:3, :3] = turn
    m[:3, 3] = -turn @ centre
    return m


# --- textures --------------------------------------------------------------------------------------------------------

def _to_linear(img_u8):
    x = img_u8.astype(np.float32) / 255.0
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


def _to_srgb(lin):
    lin = np.clip(lin, 0.0, 1.0)
    x = np.where(lin <= 0.0031308, lin * 12.92, 1.055 * np.power(lin, 1 / 2.4) - 0.055)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def _resize_linear(img, w, h):
    """``img`` scaled to w x h by area averaging in linear light (a dot pattern keeps its average tone)."""
    from PIL import Image

    lin = _to_linear(img)
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(lin[..., ch]), mode="F")
                               .resize((w, h), Image.Resampling.BOX)) for ch in range(3)], axis=-1)
    return _to_srgb(out)


def _fit(img, max_px, name):
    if (img == img[0, 0]).all():
        return np.broadcast_to(img[0, 0], (UNIFORM_TEXTURE_PX, UNIFORM_TEXTURE_PX, 3)).copy()
    h, w = img.shape[:2]
    scale = min(1.0, max_px / max(h, w))
    if scale >= 1.0:
        return np.ascontiguousarray(img)
    return _resize_linear(img, max(1, round(w * scale)), max(1, round(h * scale)))


def _halve(img):
    h, w = img.shape[:2]
    if max(h, w) <= UNIFORM_TEXTURE_PX:
        return img
    return _resize_linear(img, max(1, w // 2), max(1, h // 2))


def _jpeg(img):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode="RGB").save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    return buf.getvalue()


# --- the GLB ---------------------------------------------------------------------------------------------------------

def _geometry(v, f, uv, n, c):
    """The vertex and index arrays as the GLB stores them (one contiguous array each)."""
    k = len(v)
    nrm = np.zeros((k, 4), dtype=np.int8)  # KHR_mesh_quantization: normalized bytes, padded to 4 (byteStride)
    length = np.linalg.norm(n, axis=1, keepdims=True)
    nrm[:, :3] = np.rint(np.clip(n / np.where(length > 0, length, 1.0), -1, 1) * 127).astype(np.int8)
    col = np.full((k, 4), 65535, dtype=np.uint16)  # COLOR_0 is linear: sRGB skin converted, 16 bits (no banding)
    col[:, :3] = np.rint(_to_linear(np.asarray(c, dtype=np.uint8)) * 65535).astype(np.uint16)
    tex = np.empty((k, 2), dtype=np.float32)
    tex[:, 0] = uv[:, 0]
    tex[:, 1] = 1.0 - uv[:, 1]  # glTF's v=0 is the image's top row
    return {"POSITION": v.astype(np.float32), "NORMAL": nrm, "TEXCOORD_0": tex, "COLOR_0": col,
            "indices": f.astype(np.uint16 if k <= 65535 else np.uint32).reshape(-1)}


def _glb(geo, jpegs, names, initial_index, matrix):
    views, accessors, chunks = [], [], []
    offset = 0

    def view(data: bytes, target=None, stride=None):
        nonlocal offset
        entry = {"buffer": 0, "byteOffset": offset, "byteLength": len(data)}
        if target is not None:
            entry["target"] = target
        if stride is not None:
            entry["byteStride"] = stride
        views.append(entry)
        pad = (-len(data)) % 4
        chunks.append(data + b"\0" * pad)
        offset += len(data) + pad
        return len(views) - 1

    def accessor(array, ctype, kind, count, target, stride=None, normalized=False, bounds=False):
        acc = {"bufferView": view(array.tobytes(), target, stride), "componentType": ctype, "count": int(count),
               "type": kind}
        if normalized:
            acc["normalized"] = True
        if bounds:
            acc["min"] = [float(x) for x in array.min(axis=0)]
            acc["max"] = [float(x) for x in array.max(axis=0)]
        accessors.append(acc)
        return len(accessors) - 1

    k = len(geo["POSITION"])
    attributes = {
        "POSITION": accessor(geo["POSITION"], _FLOAT, "VEC3", k, _ARRAY_BUFFER, bounds=True),
        "NORMAL": accessor(geo["NORMAL"], _BYTE, "VEC3", k, _ARRAY_BUFFER, stride=4, normalized=True),
        "TEXCOORD_0": accessor(geo["TEXCOORD_0"], _FLOAT, "VEC2", k, _ARRAY_BUFFER),
        "COLOR_0": accessor(geo["COLOR_0"], _USHORT, "VEC4", k, _ARRAY_BUFFER, normalized=True),
    }
    idx = geo["indices"]
    indices = accessor(idx, _UINT if idx.dtype == np.uint32 else _USHORT, "SCALAR", len(idx), _ELEMENT_ARRAY_BUFFER)

    # one image per distinct JPEG (a repeated state shares it)
    image_of, images = {}, []
    for name in names:
        if jpegs[name] not in image_of:
            image_of[jpegs[name]] = len(images)
            images.append({"bufferView": view(jpegs[name]), "mimeType": "image/jpeg"})
    materials = [{"name": name, "doubleSided": True,
                  "pbrMetallicRoughness": {"baseColorTexture": {"index": image_of[jpegs[name]]},
                                           "metallicFactor": 0.0, "roughnessFactor": ROUGHNESS}}
                 for name in names]
    gltf = {
        "asset": {"version": "2.0", "generator": "scalp3d share",
                  "extras": {"scalp3d": {"units": "mm in the scan's axes; the node matrix maps them to glTF metres",
                                         "node_matrix_row_major": [[float(x) for x in r] for r in matrix]}}},
        "extensionsUsed": ["KHR_materials_variants", "KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_mesh_quantization"],
        "extensions": {"KHR_materials_variants": {"variants": [{"name": name} for name in names]}},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "head", "mesh": 0, "matrix": [float(x) for x in matrix.T.reshape(-1)]}],
        "meshes": [{"name": "head", "primitives": [{
            "attributes": attributes, "indices": indices, "material": initial_index, "mode": 4,
            "extensions": {"KHR_materials_variants": {"mappings": [
                {"material": i, "variants": [i]} for i in range(len(names))]}}}]}],
        "materials": materials,
        "textures": [{"sampler": 0, "source": i} for i in range(len(images))],
        "samplers": [{"magFilter": _LINEAR, "minFilter": _LINEAR_MIPMAP_LINEAR, "wrapS": _CLAMP, "wrapT": _CLAMP}],
        "images": images,
        "bufferViews": views,
        "accessors": accessors,
        "buffers": [{"byteLength": offset}],
    }
    js = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    js += b" " * ((-len(js)) % 4)
    binary = b"".join(chunks)
    total = 12 + 8 + len(js) + 8 + len(binary)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(js), b"JSON"), js,
                     struct.pack("<I4s", len(binary), b"BIN\0"), binary])


# --- the page --------------------------------------------------------------------------------------------------------

def _model_viewer_js() -> str:
    data = MODEL_VIEWER_JS.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_VIEWER_SHA256:
        raise Scalp3dError(f"{MODEL_VIEWER_JS}: sha256 {digest[:12]}... is not the vendored model-viewer "
                           f"{MODEL_VIEWER_VERSION}; restore it (see {VENDOR_DIR / 'README.md'})")
    js = data.decode("utf-8")
    # the source map is not shipped, and a page that fetches nothing must not name it
    js = "\n".join(line for line in js.split("\n") if not line.startswith("//# sourceMappingURL="))
    if "</script" in js.lower() or "<script" in js.lower():  # would end or confuse the inline <script> element
        raise Scalp3dError(f"{MODEL_VIEWER_JS}: holds a <script> tag and cannot be inlined")
    return js


_CREDIT = f"""<!--
  3D viewer: <model-viewer> {MODEL_VIEWER_VERSION} (npm @google/model-viewer, https://modelviewer.dev),
  Copyright 2018-2026 Google LLC, licensed under the Apache License 2.0
  (http://www.apache.org/licenses/LICENSE-2.0). It bundles three.js (MIT, Copyright 2010-2026 three.js authors),
  lit (BSD-3-Clause, Copyright 2017 Google LLC), gainmap-js (MIT, Copyright 2023 MONOGRID) and fflate (MIT,
  Copyright Arjun Barrett); their licence texts ship with scalp3d in scalp3d/viewers/vendor/. Unmodified but for
  its source-map comment. These addresses are credits only: this page fetches nothing.
-->"""

_STYLE = """
html,body{margin:0;height:100%;background:rgb(%BG%);color:#e8eaed;font:15px/1.4 system-ui,sans-serif}
body{display:flex;flex-direction:column}
header{padding:10px 16px 4px}
header h1{font-size:18px;margin:0;font-weight:600}
header p{margin:2px 0 0;color:#aab0b8;font-size:13px}
model-viewer{flex:1;width:100%;min-height:300px;background-color:rgb(%BG%);--poster-color:transparent}
nav{display:flex;flex-wrap:wrap;gap:8px;justify-content:center;padding:10px 12px 14px}
nav button{font:inherit;padding:7px 14px;border-radius:18px;border:1px solid #5f6670;background:#3a3f47;
  color:#e8eaed;cursor:pointer}
nav button[aria-pressed=true]{background:#e8eaed;color:#202124;border-color:#e8eaed}
""".replace("%BG%", ",".join(str(x) for x in BACKGROUND_RGB))

# reads #variant=NAME (or ?variant=NAME) at load; a button click switches the state and updates the address;
# <html data-shown="NAME"> is set once the state has been drawn (tests wait for it)
_SCRIPT = """
const mv = document.getElementById('mv');
const buttons = Array.from(document.querySelectorAll('nav button'));
const names = buttons.map(b => b.dataset.variant);
function asked() {
  for (const part of [location.hash.slice(1), location.search.slice(1)]) {
    const name = new URLSearchParams(part).get('variant');
    if (name !== null && names.includes(name)) return name;
  }
  return null;
}
function press(name) {
  for (const b of buttons) b.setAttribute('aria-pressed', String(b.dataset.variant === name));
}
function show(name) {
  press(name);
  if (mv.variantName === name) return;  // already shown, or shown once the model has loaded
  delete document.documentElement.dataset.shown;
  mv.variantName = name;
}
mv.addEventListener('variant-applied', () => {
  const name = mv.variantName;
  requestAnimationFrame(() => requestAnimationFrame(() => requestAnimationFrame(() => {
    if (mv.variantName === name) document.documentElement.dataset.shown = name;
  })));
});
for (const b of buttons) {
  b.addEventListener('click', () => {
    show(b.dataset.variant);
    try { history.replaceState(null, '', '#variant=' + encodeURIComponent(b.dataset.variant)); } catch (e) {}
  });
}
window.addEventListener('hashchange', () => { const name = asked(); if (name !== null) show(name); });
show(asked() ?? mv.getAttribute('variant-name'));
"""


def _page(glb, js, names, labels, initial, title, camera_orbit=None):
    esc = html.escape
    src = "data:model/gltf-binary;base64," + base64.b64encode(glb).decode("ascii")
    buttons = "\n".join(f'<button type="button" data-variant="{esc(name)}" '
                        f'aria-pressed="{str(name == initial).lower()}">{esc(label)}</button>'
                        for name, label in zip(names, labels))
    orbit = f' camera-orbit="{esc(camera_orbit)}"' if camera_orbit else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)}</title>
{_CREDIT}
<style>{_STYLE}</style>
<script type="module">
{js}
</script>
</head>
<body>
<header><h1>{esc(title)}</h1><p>Drag to turn, scroll to zoom.</p></header>
<model-viewer id="mv" camera-controls touch-action="pan-y" interaction-prompt="none" environment-image="legacy"
  tone-mapping="commerce"{orbit} shadow-intensity="0" exposure="0.7" alt="{esc(title)}: the head in 3D" variant-name="{esc(initial)}"
  src="{src}"></model-viewer>
<nav aria-label="state">
{buttons}
</nav>
<script type="module">{_SCRIPT}</script>
</body>
</html>
"""
