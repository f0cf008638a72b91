"""Tests of scalp3d.viewers.share: the self-contained HTML file with the head in 3D (issue 13, point 5).

The model is a UV sphere of radius 100 mm (a latitude-longitude grid, its seam column doubled so the UVs are
continuous) with three states: "before" (white: bare skin), "session 3" (a dark checker) and "front" (white but a
dark blue disc on the forehead: up and forward in the head frame). The scan's axes are turned against the head frame
on purpose, so the screenshots check that the page shows the head upright, its face to the camera.

The GLB is parsed here by hand (struct + json), then opened by real headless Chromium with the network blocked:
driven by playwright pointed at the system browser (one screenshot per state, clicking the page's own buttons, every
request recorded) and, without playwright, by Chromium's own --screenshot with the state in the address
(``page.html#variant=front``). Missing Chromium or playwright skip with a reason, and fail under CI (``CI`` set).
"""
import base64
import json
import os
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from scalp3d.errors import InputError, Scalp3dError
from scalp3d.viewers import share
from scalp3d.viewers.share import write_share

RADIUS_MM = 100.0
SKIN = (224, 172, 140)
CHROMIUM = shutil.which("chromium")
WINDOW = (800, 600)
#: flags of FINDINGS.md: WebGL on the CPU, every host name unresolvable (no network)
CHROMIUM_FLAGS = ["--no-sandbox", "--enable-unsafe-swiftshader", "--use-angle=swiftshader",
                  "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-gpu-sandbox"]
#: the scan's axes in the head frame: rows are the frame's x right, y forward, z up written in scan axes
#: (here the scan has y up and z forward, as many scanners write)
R_SCAN = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
ORIGIN = np.array([12.0, -30.0, 850.0])


def need(what, present):
    """Skip (one line) when a tool is missing, except under CI (``CI`` set), where it must be installed."""
    if not present:
        msg = f"{what} is not installed"
        if os.environ.get("CI"):
            pytest.fail(msg + "; CI must have it")
        pytest.skip(msg)


def uv_sphere(n_lat=64, n_lon=128):
    """A UV sphere in the head frame (z up): vertices, faces, uv (v=0 at the bottom: south pole), unit normals."""
    theta = np.linspace(0, np.pi, n_lat + 1)  # from the top
    phi = np.linspace(0, 2 * np.pi, n_lon + 1)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    normals = np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], -1).reshape(-1, 3)
    uv = np.stack([p / (2 * np.pi), 1 - t / np.pi], -1).reshape(-1, 2).astype(np.float32)
    idx = np.arange((n_lat + 1) * (n_lon + 1)).reshape(n_lat + 1, n_lon + 1)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, :-1], idx[1:, 1:]
    faces = np.concatenate([np.stack([a, c, b], -1)[1:].reshape(-1, 3),     # no degenerate face at the poles
                            np.stack([b, c, d], -1)[:-1].reshape(-1, 3)]).astype(np.int64)
    used = np.unique(faces)  # two pole copies are in no face
    remap = np.zeros(len(normals), np.int64)
    remap[used] = np.arange(len(used))
    return normals[used] * RADIUS_MM, remap[faces], uv[used], normals[used]


def textures(h=256, w=512):
    white = np.full((h, w, 3), 255, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    checker = np.where(((yy // 32 + xx // 32) % 2 == 0)[..., None], 50, 255).astype(np.uint8).repeat(3, axis=-1)
    # forehead: forward is phi = 90 deg (u = 0.25), 45 deg below the top (v = 0.75, row h/4 from the image's top)
    front = white.copy()
    front[(yy - h // 4) ** 2 + (xx - w // 4) ** 2 < (h // 8) ** 2] = (30, 30, 150)
    return {"before": white, "session 3": checker, "front": front}


def head_in_scan_axes():
    """The sphere written in the scan's axes (scan = origin + frame @ R), with its frame."""
    v, f, uv, n = uv_sphere()
    return {"vertices": ORIGIN + v @ R_SCAN, "faces": f, "uv": uv, "normals": n @ R_SCAN,
            "colors": np.tile(np.array([SKIN], np.uint8), (len(v), 1)), "textures": textures(),
            "frame": (ORIGIN, R_SCAN)}


def read_glb(data: bytes):
    """(json, accessor(i) -> array) of a GLB, checking its header and chunks."""
    magic, version, total = struct.unpack_from("<4sII", data, 0)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    jlen, jtype = struct.unpack_from("<I4s", data, 12)
    assert jtype == b"JSON" and jlen % 4 == 0
    gltf = json.loads(data[20:20 + jlen])
    blen, btype = struct.unpack_from("<I4s", data, 20 + jlen)
    assert btype == b"BIN\0" and blen % 4 == 0 and 28 + jlen + blen == len(data)
    binary = data[28 + jlen:]
    assert gltf["buffers"] == [{"byteLength": blen}]
    for view in gltf["bufferViews"]:
        assert view["byteOffset"] + view["byteLength"] <= blen
    dtypes = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
    widths = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}

    def accessor(i):
        acc = gltf["accessors"][i]
        view = gltf["bufferViews"][acc["bufferView"]]
        dt = np.dtype(dtypes[acc["componentType"]])
        width = widths[acc["type"]]
        stride = view.get("byteStride", dt.itemsize * width)
        assert stride % 4 == 0 or acc["type"] == "SCALAR"
        raw = np.frombuffer(binary, np.uint8, count=view["byteLength"], offset=view["byteOffset"])
        rows = raw[:acc["count"] * stride].reshape(acc["count"], stride)[:, :dt.itemsize * width]
        out = rows.copy().view(dt).reshape(acc["count"], width)
        if "min" in acc:
            assert np.allclose(out.min(axis=0), acc["min"]) and np.allclose(out.max(axis=0), acc["max"])
        return out

    return gltf, accessor, binary


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    d = tmp_path_factory.mktemp("share")
    head = head_in_scan_axes()
    info = write_share(d / "head.html", glb_path=d / "head.glb", title="Test head", **head)
    return d, head, info


# --- the GLB ---------------------------------------------------------------------------------------------------------

def test_glb_structure_and_round_trip(written):
    d, head, info = written
    gltf, accessor, binary = read_glb((d / "head.glb").read_bytes())
    names = list(head["textures"])
    assert info["variants"] == names and info["triangles"] == len(head["faces"])
    assert [v["name"] for v in gltf["extensions"]["KHR_materials_variants"]["variants"]] == names
    prim = gltf["meshes"][0]["primitives"][0]
    mappings = prim["extensions"]["KHR_materials_variants"]["mappings"]
    assert sorted(i for m in mappings for i in m["variants"]) == list(range(len(names)))
    assert [gltf["materials"][m["material"]]["name"] for m in mappings] == names
    assert set(gltf["extensionsUsed"]) >= {"KHR_materials_variants", "KHR_mesh_quantization"}

    k = len(head["vertices"])
    pos, uv, nrm, col = (accessor(prim["attributes"][a]) for a in ("POSITION", "TEXCOORD_0", "NORMAL", "COLOR_0"))
    idx = accessor(prim["indices"]).reshape(-1, 3)
    assert len(pos) == len(uv) == len(nrm) == len(col) == k and len(idx) == len(head["faces"])
    # positions stay mm in the scan's axes, uv flipped to glTF's top-row origin; both exact to float32
    assert np.array_equal(pos, head["vertices"].astype(np.float32))
    assert np.abs((1 - uv[:, 1]) - head["uv"][:, 1]).max() <= 2 ** -24
    assert np.array_equal(uv[:, 0], head["uv"][:, 0])
    assert np.array_equal(idx, head["faces"])
    assert np.abs(nrm / 127.0 - head["normals"]).max() < 0.01
    lin = ((np.array(SKIN) / 255 + 0.055) / 1.055) ** 2.4  # COLOR_0 is linear
    assert np.abs(col[:, :3] / 65535 - lin).max() < 1e-4

    # every state's texture is a JPEG of the right size (the white one shrunk to a few pixels)
    for m in gltf["materials"]:
        image = gltf["images"][gltf["textures"][m["pbrMetallicRoughness"]["baseColorTexture"]["index"]]["source"]]
        view = gltf["bufferViews"][image["bufferView"]]
        jpeg = Image.open(BytesIO(binary[view["byteOffset"]:view["byteOffset"] + view["byteLength"]]))
        assert jpeg.format == "JPEG" and jpeg.size == info["texture_sizes"][m["name"]]
    assert info["texture_sizes"]["before"] == (4, 4) and info["texture_px"] == 512


def test_node_turns_head_upright_facing_plus_z(written):
    d, head, _ = written
    gltf, _, _ = read_glb((d / "head.glb").read_bytes())
    m = np.array(gltf["nodes"][0]["matrix"]).reshape(4, 4).T  # glTF is column-major

    def to_gltf(p):
        return m[:3, :3] @ p + m[:3, 3]

    forward, up, right = R_SCAN[1], R_SCAN[2], R_SCAN[0]
    assert np.allclose(to_gltf(ORIGIN), 0, atol=1e-9)  # the sphere's centre is its bounding box's
    assert np.allclose(to_gltf(ORIGIN + 100 * forward), [0, 0, 0.1])  # the face towards +Z (the camera), metres
    assert np.allclose(to_gltf(ORIGIN + 100 * up), [0, 0.1, 0])  # upright
    assert np.allclose(to_gltf(ORIGIN + 100 * right), [-0.1, 0, 0])  # the patient's right on the viewer's left
    assert np.isclose(np.linalg.det(m[:3, :3]), 1e-9, rtol=1e-6, atol=0)  # a rotation, mm to m


def test_keep_faces_drops_faces_and_their_vertices(tmp_path):
    head = head_in_scan_axes()
    keep = head["vertices"][head["faces"]].mean(axis=1) @ R_SCAN[2] > ORIGIN @ R_SCAN[2]  # the upper half
    info = write_share(tmp_path / "cut.html", glb_path=tmp_path / "cut.glb", keep_faces=keep, **head)
    gltf, accessor, _ = read_glb((tmp_path / "cut.glb").read_bytes())
    prim = gltf["meshes"][0]["primitives"][0]
    pos, idx = accessor(prim["attributes"]["POSITION"]), accessor(prim["indices"]).reshape(-1, 3)
    used = np.unique(head["faces"][keep])
    assert info["triangles"] == keep.sum() == len(idx) and info["vertices"] == len(used) == len(pos)
    assert np.array_equal(pos[idx], head["vertices"][head["faces"][keep]].astype(np.float32))


def test_textures_fit_the_size_and_the_budget(tmp_path):
    head = head_in_scan_axes()
    big = np.random.default_rng(0).integers(0, 256, (1024, 2048, 3), dtype=np.uint8)  # noise: JPEG cannot shrink it
    head["textures"] = {"before": head["textures"]["before"], "noise": big}
    info = write_share(tmp_path / "a.html", max_texture_px=1000, **head)
    assert info["texture_sizes"]["noise"] == (1000, 500) and info["texture_px"] == 1000
    budget = (info["bytes"] + write_share(tmp_path / "b.html", max_texture_px=64, **head)["bytes"]) // 2
    info = write_share(tmp_path / "b.html", max_texture_px=1000, max_bytes=budget, **head)
    assert info["bytes"] <= budget and info["texture_px"] in (500, 250, 125)
    assert (tmp_path / "b.html").stat().st_size == info["bytes"]
    with pytest.raises(Scalp3dError, match="budget"):
        write_share(tmp_path / "c.html", max_bytes=1_000_000, **head)  # the viewer alone is 1.07 MB
    assert not (tmp_path / "c.html").exists()
    with pytest.raises(InputError, match="labels"):
        write_share(tmp_path / "d.html", labels=["one"], **head)


def test_textures_shrink_in_linear_light():
    """Black and white halves averaged keep the pattern's tone (sRGB 188), not the sRGB mean (128)."""
    img = np.zeros((64, 64, 3), np.uint8)
    img[:, ::2] = 255
    small = share._fit(img, 8, "t")
    assert small.shape == (8, 8, 3) and np.abs(small.astype(int) - 188).max() <= 1


# --- the page --------------------------------------------------------------------------------------------------------

class _Refs(HTMLParser):
    """Every attribute that names something a browser would load, and every script's text."""

    def __init__(self):
        super().__init__()
        self.refs, self.scripts, self._in_script = [], [], False

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("src", "href", "poster", "srcset", "action", "data", "environment-image", "skybox-image",
                       "ios-src", "background"):
                self.refs.append((tag, key, value or ""))
        self._in_script = tag == "script"

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts.append(data)


def test_html_fetches_nothing(written, record_property):
    d, _, info = written
    text = (d / "head.html").read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) == info["bytes"] == (d / "head.html").stat().st_size
    record_property("share_html_bytes", info["bytes"])
    print(f"\nshare HTML on the test sphere ({info['triangles']} triangles, {len(info['variants'])} states): "
          f"{info['bytes'] / 1e6:.2f} MB, GLB {info['glb_bytes'] / 1e6:.2f} MB")
    parser = _Refs()
    parser.feed(text)
    builtin = {("environment-image", "legacy"), ("environment-image", "neutral")}  # generated in code, no file
    assert [r for r in parser.refs if not r[2].startswith("data:") and r[1:] not in builtin] == []
    assert any(r[0] == "model-viewer" and r[2].startswith("data:model/gltf-binary;base64,") for r in parser.refs)
    code = "\n".join(parser.scripts)
    assert "customElements.define(\"model-viewer\"" in code  # the viewer is inline
    # no module import, fetch, script or stylesheet from the network, and no source map to fetch
    fetching = re.compile(r"""(import\s*\(?\s*["'`]|from\s*["'`]|fetch\s*\(\s*["'`]|url\(\s*["']?|@import\s*["'])"""
                          r"""\s*(https?:)?//""", re.I)
    assert fetching.findall(text) == []
    assert "sourceMappingURL" not in code
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text).group(1)
    assert "default-src 'none'" in csp and "http" not in csp
    assert "<model-viewer> 4.4.0" in text and "Apache License 2.0" in text  # the credit
    assert "Drag to turn, scroll to zoom." in text
    for name in info["variants"]:
        assert f'data-variant="{name}"' in text


# --- in a real browser -----------------------------------------------------------------------------------------------

BG = np.array(share.BACKGROUND_RGB)


def _object_mask(img):
    return np.abs(img[..., :3].astype(int) - BG).max(axis=-1) > 12


def _check_model_shown(img, centred):
    h, w = img.shape[:2]
    mask = _object_mask(img)
    centre = mask[h // 2 - h // 10:h // 2 + h // 10, w // 2 - w // 10:w // 2 + w // 10]
    assert centre.mean() > 0.95, "the centre of the view is background: no model"
    assert (0.2 if centred else 0.05) < mask.mean() < 0.9, f"the model covers {mask.mean():.0%} of the view"
    ys, xs = np.nonzero(mask)
    assert abs(xs.mean() - w / 2) < 0.05 * w, "the model is not centred"
    if centred:
        assert abs(ys.mean() - h / 2) < 0.08 * h, "the model is not centred"
    return mask


def _luminance(img):
    return img[..., :3].astype(float).mean(axis=-1)


def _check_forehead(front, mask):
    """The forehead disc is blue, upper middle of the head: the head is upright and faces the camera."""
    blue = (front[..., 2].astype(int) - front[..., 0] > 40) & mask
    assert blue.sum() > 0.02 * mask.sum(), "the forehead marker is not in view"
    ys, xs = np.nonzero(mask)
    by, bx = np.nonzero(blue)
    assert by.mean() < ys.mean() - 0.15 * (ys.max() - ys.min()), "the forehead marker is not above the centre"
    assert abs(bx.mean() - xs.mean()) < 0.1 * (xs.max() - xs.min()), "the forehead marker is off the middle"


def _check_states(shots, centred=True):
    """Screenshots of the viewer (arrays) by state: model shown and lit, states differ, forehead marker on top."""
    masks = {name: _check_model_shown(img, centred) for name, img in shots.items()}
    if "before" in shots:
        skin = _luminance(shots["before"])[masks["before"]]
        assert np.percentile(skin, 95) - np.percentile(skin, 5) > 15, "the head looks unlit (flat)"
        assert _luminance(shots["before"])[masks["before"]].mean() > 150, "bare skin is too dark"
    # the dark checker darkens about half of the head clearly, against bare skin (or the forehead-only state)
    other = "before" if "before" in shots else "front"
    inside = masks[other] & masks["session 3"]
    changed = np.abs(_luminance(shots[other]) - _luminance(shots["session 3"]))[inside] > 40
    assert 0.25 < changed.mean() < 0.75, f"'session 3' changes {changed.mean():.0%} of the head"
    assert _luminance(shots["session 3"])[inside].mean() < 0.8 * _luminance(shots[other])[inside].mean()
    if centred:  # --screenshot may catch the first, smaller layout with the forehead off the top: playwright checks it
        _check_forehead(shots["front"], masks["front"])


def test_chromium_playwright_switches_states(written, tmp_path):
    need("chromium (apt-get install -y --no-install-recommends chromium)", CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        need("playwright (pip install -e '.[test]')", False)
    d, head, info = written
    names = list(head["textures"])
    requests, problems = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": WINDOW[0], "height": WINDOW[1]})
            page.on("request", lambda r: requests.append(r.url))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.set_default_timeout(40_000)
            page.goto((d / "head.html").as_uri())
            shown = "n => document.documentElement.dataset.shown === n"  # the page sets it once the state is drawn
            page.wait_for_function(shown, arg="before")
            assert page.evaluate("document.getElementById('mv').availableVariants") == names
            shots = {}
            for name in names:
                page.click(f'nav button[data-variant="{name}"]')
                page.wait_for_function(shown, arg=name)
                assert page.get_attribute(f'nav button[data-variant="{name}"]', "aria-pressed") == "true"
                png = page.locator("#mv").screenshot()
                (tmp_path / f"{name}.png").write_bytes(png)
                shots[name] = np.asarray(Image.open(BytesIO(png)).convert("RGB"))
            assert page.evaluate("location.hash") == "#variant=front"
        finally:
            browser.close()
    assert problems == [], problems  # no script error, no Content-Security-Policy violation
    assert [u for u in requests if not u.startswith(("file:", "data:", "blob:"))] == []
    _check_states(shots)


def test_chromium_screenshot_opens_state_from_address(written, tmp_path):
    """Without a driver: Chromium's own --screenshot, the state named in the address (#variant=...). --screenshot
    fires after a virtual time budget, not when the model is drawn: on a loaded machine the first try can catch the
    page before the model; each state gets up to three tries, one after another."""
    need("chromium (apt-get install -y --no-install-recommends chromium)", CHROMIUM)
    d, _, _ = written
    shots = {}
    for name in ("session 3", "front"):
        url = (d / "head.html").as_uri() + "#variant=" + name.replace(" ", "%20")
        for attempt in range(3):
            png = tmp_path / f"{name}-{attempt}.png"
            run = subprocess.run(
                [CHROMIUM, "--headless=new", *CHROMIUM_FLAGS, f"--window-size={WINDOW[0]},{WINDOW[1]}",
                 f"--user-data-dir={tmp_path / ('profile-' + name[0] + str(attempt))}", "--hide-scrollbars",
                 f"--virtual-time-budget={20000 * (attempt + 1)}", f"--screenshot={png}", url],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path, timeout=120)
            assert png.exists(), run.stderr[-500:]
            img = np.asarray(Image.open(png).convert("RGB"))[60:-70]  # below the caption, above the buttons
            h, w = img.shape[:2]
            centre = img[h // 3:2 * h // 3, w // 3:2 * w // 3].astype(int)
            if (np.abs(centre - img[5, 5].astype(int)).sum(axis=2) > 30).mean() > 0.5:
                break  # the model is drawn
        shots[name] = img
    # --screenshot may draw the model as laid out at a first, smaller window height: framed high and smaller
    # (playwright checks centring and size)
    _check_states(shots, centred=False)
