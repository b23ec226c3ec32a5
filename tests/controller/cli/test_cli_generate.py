"""``uedsteer generate`` (frames): writes a store, and refuses one made with other settings."""

from uedsteer.sim_devices.frame_store import load_dataset


def test_cli_generate_and_error_message(tmp_path, capsys):
    from uedsteer.controller.cli import main

    out = tmp_path / "cli.zarr"
    args = [
        "generate",
        "--out",
        str(out),
        "--labels",
        "degraded",
        "--n-per-label",
        "2",
        "--chunk",
        "2",
        "--workers",
        "1",
        "--set",
        "base_size=[10,6]",
    ]
    assert main(args) == 0
    frames, params = load_dataset(out)
    assert len(frames) == 2 and params[0]["label"] == "degraded"
    assert main([*args[:-1], "base_size=[11,6]"]) == 2
    assert "different configuration" in capsys.readouterr().err
