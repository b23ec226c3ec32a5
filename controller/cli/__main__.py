"""``python -m uedsteer.controller.cli``: the ``uedsteer`` command (tests and benchmarks start it
this way, with the interpreter they run in)."""

from uedsteer.controller.cli import main

raise SystemExit(main())
