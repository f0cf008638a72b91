"""scalp3d.export.read_dots_csv: what the writers write reads back (to their rounding), and every malformed file is
refused with one line naming the line and the column."""
import numpy as np
import pytest
import trimesh

from scalp3d import config
from scalp3d.errors import InputError
from scalp3d.export import CSV_COLUMNS, dots_csv_text, read_dots_csv, sample_csv_text
from scalp3d.placement import place_dots

from helpers import with_settings

ZONE_NAMES = ("hairline", "crown")
NEEDLE_NAMES = ("0603-1RL", "0803-1RL")
SHADES = ["light", "medium", "dark"]


@pytest.fixture(scope="module")
def dots():
    s = trimesh.creation.icosphere(3, radius=40.0)
    d = place_dots(np.asarray(s.vertices), np.asarray(s.faces), count=60, seed=2, sessions=3)
    n = len(d)
    return with_settings(d, zone=np.arange(n) % 2, needle=(np.arange(n) // 2) % 2, shade=d.session - 1,
                         depth_mm=np.linspace(0.5, 1.0, n), dot_size_mm=0.35, zone_names=ZONE_NAMES,
                         needle_names=NEEDLE_NAMES, shade_names=SHADES)


def _write(tmp_path, text, name="dots.csv", encoding="utf-8"):
    p = tmp_path / name
    p.write_bytes(text.encode(encoding))
    return p


def test_sample_csv_reads_back(tmp_path, dots):
    cols = read_dots_csv(_write(tmp_path, sample_csv_text(dots)))
    assert list(cols) == ["id", "x", "y", "z", "nx", "ny", "nz", "session"]
    assert cols["id"].dtype == np.int64 and cols["session"].dtype == np.int64 and cols["x"].dtype == np.float64
    assert np.array_equal(cols["id"], dots.ids) and np.array_equal(cols["session"], dots.session)
    pos = np.column_stack([cols["x"], cols["y"], cols["z"]])
    nrm = np.column_stack([cols["nx"], cols["ny"], cols["nz"]])
    assert np.abs(pos - dots.positions).max() <= 0.5 * 10.0 ** -config.ROUND_MM + 1e-12
    assert np.abs(nrm - dots.normals).max() <= 0.5e-6 + 1e-12


def test_dots_csv_reads_back(tmp_path, dots):
    cols = read_dots_csv(_write(tmp_path, dots_csv_text(dots)))
    assert tuple(cols) == CSV_COLUMNS
    assert cols["zone"] == [ZONE_NAMES[z] for z in dots.zone]  # text columns stay text
    assert cols["needle"] == [NEEDLE_NAMES[k] for k in dots.needle]
    assert cols["shade"] == [SHADES[s - 1] for s in dots.session]
    assert np.abs(cols["depth_mm"] - dots.depth_mm).max() <= 0.5e-3 + 1e-12
    assert np.all(cols["dot_size_mm"] == 0.35)
    assert np.array_equal(cols["id"], dots.ids)


def test_only_the_four_first_columns_are_needed(tmp_path):
    p = _write(tmp_path, "\ufeffid,x,y,z\r\n\r\n7,1.5,-2,3e1\r\n8, 0.25 ,0,0\r\n")  # BOM, CRLF, a blank line
    cols = read_dots_csv(p)
    assert cols["id"].tolist() == [7, 8]
    assert cols["x"].tolist() == [1.5, 0.25] and cols["z"].tolist() == [30.0, 0.0]


def test_header_only_gives_empty_columns(tmp_path):
    cols = read_dots_csv(_write(tmp_path, "id,x,y,z\n"))
    assert all(len(v) == 0 for v in cols.values()) and list(cols) == ["id", "x", "y", "z"]


@pytest.mark.parametrize("text,match", [
    ("", r"not a scalp3d dots.csv \(first line must be id,x,y,z,"),
    ("x,y,z\n1,2,3\n", "not a scalp3d dots.csv"),
    ("id,x,y,z,x\n1,2,3,4,5\n", "names a column twice"),
    ("id,x,y,z\n1,2,3,4\n2,5,6\n", "line 3 has 3 fields, the first line names 4"),
    ("id,x,y,z\n1,2,3,4\n2,5,six,7\n", r"line 3, column 'y': 'six' is not a finite number"),
    ("id,x,y,z\n1,2,3,inf\n", r"line 2, column 'z': 'inf' is not a finite number"),
    ("id,x,y,z\n1,2,3,4\n1.5,2,3,4\n", r"line 3, column 'id': '1.5' is not a whole number"),
    ("id,x,y,z,session\n1,2,3,4,one\n", r"line 2, column 'session': 'one' is not a whole number"),
])
def test_malformed_files_are_refused_in_one_line(tmp_path, text, match):
    p = _write(tmp_path, text)
    with pytest.raises(InputError, match=match) as e:
        read_dots_csv(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_missing_file_folder_and_binary(tmp_path):
    with pytest.raises(InputError, match="dots file not found"):
        read_dots_csv(tmp_path / "none.csv")
    with pytest.raises(InputError, match="is a folder"):
        read_dots_csv(tmp_path)
    binary = tmp_path / "dots.bin"
    binary.write_bytes(b"id,x,y,z\n1,2,3,\xff\xfe\n")  # not UTF-8
    with pytest.raises(InputError, match="cannot be read as a dots CSV"):
        read_dots_csv(binary)
