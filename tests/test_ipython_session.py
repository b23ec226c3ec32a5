"""Drive `uedsteer ipython` as a person would: type a scan, then look at the catalog."""

import sys
from pathlib import Path

import pexpect

UEDSTEER = str(Path(sys.executable).parent / "uedsteer")
PROMPT = r"In \[\d+\]: "


def test_ipython_session_end_to_end(tmp_path):
    child = pexpect.spawn(
        UEDSTEER,
        [
            "ipython",
            "--catalog",
            str(tmp_path / "cat"),
            "--",
            "--simple-prompt",
            "--colors=nocolor",
        ],
        encoding="utf-8",
        timeout=120,
        dimensions=(60, 200),
    )
    try:
        child.expect(PROMPT)
        child.sendline("RE(fluence_scan(bl, [0.5, 1, 2]))")
        # BestEffortCallback prints a live table with the scanned fluence
        child.expect(r"pump_fluence")
        child.expect(PROMPT)
        assert "2.000" in child.before or "2.0" in child.before
        child.sendline("print('PLAN', db[-1].start['plan_name'], read_frames(db[-1]).shape)")
        child.expect(r"PLAN fluence_scan \(3, 261, 261\)")
        child.expect(PROMPT)
        child.sendline("print('SHUTTER', bl.pump.shutter.get(), db[-1].stop['exit_status'])")
        child.expect("SHUTTER closed success")
        child.expect(PROMPT)
        child.sendline("RE(fluence_scan(bl, [35]))")
        child.expect(r"above the hard limit 20")
        child.expect(PROMPT)
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert (tmp_path / "cat" / "catalog.db").exists()
