"""The shipped history generators: realistic features, ground truth, run/1 documents."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tritonwatch.runformat import parse_run
from tritonwatch.testing import PlantedStep, history_runs, make_histories, score, write_jsonl


def test_histories_have_the_planted_steps_and_features() -> None:
    h = make_histories(2000, 60, step_fraction=0.2, seed=3)
    assert h.values.shape == (2000, 60)
    assert 300 < len(h.truth) < 500
    for t in h.truth[:50]:
        v = h.values[t.row]
        before = np.nanmedian(v[max(0, t.night - 8) : t.night])
        after = np.nanmedian(v[t.night : t.night + 2])
        # the realised change has the planted sign (noise may blur small steps)
        if abs(t.size) >= 0.1 and t.noise <= 0.01:
            assert np.sign(after / before - 1) == np.sign(t.size)
        assert 8 <= t.night <= 58
    assert np.isnan(h.values).mean() > 0.01  # missing nights and late-appearing cases
    assert set(np.unique(h.noise)) == {0.003, 0.005, 0.01, 0.02, 0.05}
    # spikes: some nights jump >= 5% and come back the next night
    rel = h.values[:, 1:-1] / np.nanmedian(h.values, axis=1)[:, None]
    assert np.nansum(rel > 1.05 + 3 * h.noise[:, None]) > 100
    # deterministic for a seed
    assert np.array_equal(
        make_histories(50, 20, seed=1).values, make_histories(50, 20, seed=1).values, equal_nan=True
    )


def test_samples_and_jsonl_round_trip(tmp_path: Path) -> None:
    h = make_histories(
        5,
        6,
        step_fraction=1.0,
        samples_per_night=4,
        min_before=2,
        min_after=2,
        new_case_fraction=0.0,
        missing_rate=0.0,
        seed=2,
    )
    assert h.samples is not None and h.samples.shape == (5, 6, 4)
    assert np.allclose(np.median(h.samples, axis=2), h.values)
    docs = history_runs(h)
    assert len(docs) == 6
    path = write_jsonl(docs, tmp_path / "h.jsonl")
    lines = path.read_text().splitlines()
    runs = [parse_run(line) for line in lines]
    assert [len(r.results) for r in runs] == [5] * 6
    assert runs[0].results[0].samples == list(h.samples[0, 0])
    assert runs[0].build.triton.commit != runs[1].build.triton.commit
    assert json.loads(lines[0])["format"] == "tritonwatch.run/1"


def test_score() -> None:
    truth = [
        PlantedStep(row=0, night=10, size=0.05, noise=0.01),
        PlantedStep(row=1, night=20, size=-0.05, noise=0.01),
    ]
    sc = score([(0, 11, 0.05), (1, 20, 0.04), (2, 5, 0.1)], truth)
    assert (sc.tp, sc.fp, sc.fn) == (1, 2, 1)  # row 1 has the wrong direction
    assert sc.precision == 1 / 3 and sc.recall == 0.5
    assert score([], truth).recall == 0.0 and score([], []).f1 == 1.0
