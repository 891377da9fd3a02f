"""The Prometheus exposition parses with the reference parser
(prometheus_client) and its families are well-formed: HELP/TYPE present,
histograms with cumulative buckets ending in +Inf == _count."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

import rio


def families(rt: rio.Runtime) -> dict:
    return {f.name: f for f in text_string_to_metric_families(rt.metrics_prometheus())}


def test_exposition_parses_and_is_well_formed(rt: rio.Runtime, path, tmp_path) -> None:
    with rt.open(str(path), "w+") as f:
        for i in range(20):
            f.write_at(b"x" * 4096, i * 4096)
        f.datasync()
        assert f.read_at(4096, 0) == b"x" * 4096
    with rt.open(str(path), "r") as ro, pytest.raises(OSError):
        ro.write_at(b"z", 0)  # EBADF from the kernel: counted as an error

    fams = families(rt)
    ops = fams["rio_ops"]
    assert ops.type == "counter" and ops.documentation
    by_op = {s.labels["op"]: s.value for s in ops.samples if s.name == "rio_ops_total"}
    assert by_op["write"] >= 21 and by_op["fdatasync"] >= 1 and by_op["read"] >= 1
    errors = {(s.labels["op"], s.labels["errno"]): s.value for s in fams["rio_op_errors"].samples}
    assert errors[("write", "9")] >= 1  # EBADF

    hist = fams["rio_op_duration_seconds"]
    assert hist.type == "histogram"
    for op in ("write", "fdatasync", "fsync", "read"):
        samples = [s for s in hist.samples if s.labels.get("op") == op]
        buckets = [s for s in samples if s.name.endswith("_bucket")]
        bounds = [float(s.labels["le"]) for s in buckets]
        counts = [s.value for s in buckets]
        assert bounds == sorted(bounds) and math.isinf(bounds[-1])
        assert counts == sorted(counts), f"{op}: buckets not cumulative"
        count = next(s.value for s in samples if s.name.endswith("_count"))
        assert counts[-1] == count
    assert fams["rio_backend_info"].type == "gauge"
    active = [s.labels["backend"] for s in fams["rio_backend_info"].samples if s.value == 1]
    assert active == [rt.backend]
    assert fams["rio_ops_in_flight"].samples[0].value == 0


def test_wal_families_parse_with_the_wal_label(rt: rio.Runtime, tmp_path) -> None:
    wal_dir = tmp_path / "wal"
    with rt.open_wal(str(wal_dir), segment_size=8192) as wal:
        for i in range(50):
            wal.append(b"entry %d " % i + b"x" * 200)
        wal.truncate_before(wal.last_seq)
        fams = families(rt)
        label = {"wal": str(wal_dir)}
        def value(name: str, sample: str | None = None) -> float:
            sample = sample or name
            return next(s.value for s in fams[name].samples if s.name == sample and s.labels == label)
        assert value("rio_wal_appends", "rio_wal_appends_total") == 50
        assert value("rio_wal_segments_created", "rio_wal_segments_created_total") >= 2
        assert value("rio_wal_segments_removed", "rio_wal_segments_removed_total") >= 1
        assert value("rio_wal_poisoned") == 0
        hist = fams["rio_wal_group_commit_entries"]
        assert hist.type == "histogram"
        count = next(s.value for s in hist.samples if s.name.endswith("_count") and s.labels == label)
        inf = next(s.value for s in hist.samples if s.name.endswith("_bucket") and s.labels.get("le") == "+Inf")
        assert count == inf >= 1
        assert fams["rio_wal_fdatasync_seconds"].type == "histogram"
