import subprocess
import sys

import matplotlib.image as mpimg


def test_demo_writes_a_montage_of_every_class(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "uedsteer.controller.cli", "demo", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    for label in ("ref_2H", "vacancy_1Tp", "degraded", "interpolated"):
        assert label in proc.stdout
    img = mpimg.imread(out / "montage.png")
    assert img.shape[0] > 300 and img.shape[1] > 1500
    assert img[..., :3].std() > 0.05, "the montage is not a blank picture"


def test_cli_reports_bad_input_without_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "uedsteer.controller.cli",
            "generate",
            "--out",
            str(tmp_path / "x.zarr"),
            "--labels",
            "molten_2H",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "label='molten_2H'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "x.zarr").exists()
