"""Reading a stream's scalar columns while the run is written (``resume.stream_table``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from uedsteer.plans.resume import stream_table

READ_ALONE: list[str] = []
"""Columns read on their own that a served catalog would fail (and time out on)."""


class _Column:
    def __init__(self, values, name=""):
        self.values, self.name = values, name

    def read(self):
        if self.values is None:
            READ_ALONE.append(self.name)
            raise RuntimeError("500 Internal Server Error, after the client's read timeout")
        return np.asarray(self.values)


class _Table:
    def __init__(self, frame):
        self.frame = frame

    def read(self):
        return self.frame


class _Node(dict):
    """A catalog node: its children by name, and (a composite stream) the plain container."""

    def __init__(self, children, base=None):
        super().__init__(children)
        if base is not None:
            self.base = base


def test_a_table_being_created_reads_as_no_rows_not_column_by_column():
    # the composite lists the table's columns while the table's own node is not found yet: a
    # column read then fails on a served catalog (its cached shape is stale) after a timeout
    READ_ALONE.clear()
    creating = _Node({"det_image": _Column(None, "det_image")})
    run = {"primary": _Node({"campaign_shot": _Column(None, "campaign_shot")}, base=creating)}
    assert stream_table(run, "primary", "campaign_") == {}
    assert READ_ALONE == []


def test_the_table_is_read_in_one_request_and_arrays_of_their_own_one_by_one():
    READ_ALONE.clear()
    frame = pd.DataFrame({"campaign_shot": [0, 1, 2], "campaign_fluence": [1.0, 2.0, 3.0]})
    base = _Node({"internal": _Table(frame), "det_image": _Column(None)})
    run = {"primary": _Node({"campaign_shot": _Column(None)}, base=base)}
    cols = stream_table(run, "primary", "campaign_")
    assert set(cols) == {"shot", "fluence"} and cols["shot"].tolist() == [0, 1, 2]
    # a catalog that stores each column as an array of its own (no table, no composite)
    plain = {"primary": _Node({"campaign_shot": _Column([0, 1]), "det_image": _Column(None)})}
    assert stream_table(plain, "primary", "campaign_")["shot"].tolist() == [0, 1]
    assert stream_table(plain, "secondary") == {}
    assert READ_ALONE == []
