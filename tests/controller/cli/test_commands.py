"""Every command is one module of ``uedsteer.controller.cli`` that registers its own sub-parser,
``uedsteer --help`` lists every command, and asking for help stays fast (no heavy imports)."""

from __future__ import annotations

import argparse
import pkgutil
import subprocess
import sys

import pytest
from helpers import run_main

from uedsteer.controller import cli

SHARED = {"arguments", "errors", "__main__"}  # the modules that are not commands
NAMES = [module.__name__.rsplit(".", 1)[-1] for module in cli.COMMANDS]


def test_every_module_of_the_package_is_a_command_or_shared():
    modules = {info.name for info in pkgutil.iter_modules(cli.__path__)}
    assert modules - SHARED == set(NAMES), "name a new command module in cli.COMMANDS"


@pytest.mark.parametrize("module", cli.COMMANDS, ids=NAMES)
def test_each_command_module_registers_its_own_parser(module):
    name = module.__name__.rsplit(".", 1)[-1]
    sub = argparse.ArgumentParser(prog="uedsteer").add_subparsers(dest="command")
    module.add_parser(sub)
    assert list(sub.choices) == [name], "one sub-command, named like its module"
    func = sub.choices[name].get_default("func")
    assert callable(func) and func.__module__ == module.__name__, "its run function is its own"


def test_help_lists_every_command_in_order():
    proc = run_main(["--help"])
    assert proc.returncode == 0, proc.stderr
    assert "{" + ",".join(NAMES) + "}" in proc.stdout
    lines = proc.stdout.splitlines()
    listed = [line.split()[0] for line in lines if line[:4] == "    " and line[4:5] != " "]
    assert listed == NAMES
    assert proc.stdout.startswith("usage: uedsteer [-h]")


def test_help_as_a_module_imports_nothing_heavy():
    """``python -m uedsteer.controller.cli`` (how tests and benchmarks start the command) works,
    and ``--help`` loads neither torch nor bluesky nor the packages below the CLI."""
    code = (
        "import runpy, sys\n"
        "try:\n"
        "    runpy.run_module('uedsteer.controller.cli', run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    assert exit_.code == 0, exit_.code\n"
        "heavy = ('torch', 'bluesky', 'pydantic', 'matplotlib', 'uedsteer.plans',\n"
        "         'uedsteer.surrogates', 'uedsteer.sim_devices')\n"
        "print('loaded:', [m for m in heavy if m in sys.modules], file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "usage: uedsteer" in proc.stdout
    assert "loaded: []" in proc.stderr
