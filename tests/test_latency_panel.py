"""A model's latency cases timed together: drift cancels across cases, errors stay with their case."""
import numpy as np
import pytest

from edgeopt.latency import CaseLatency, PanelTiming, median_interval, normalise, time_panel


def drifting_rounds(kernels, rounds=200, seed=0):
    """Per-round seconds of cases under the machine's drift: phases of -20% .. +40% shared by a round."""
    rng = np.random.default_rng(seed)
    phase = np.repeat(rng.uniform(0.8, 1.4, rounds // 10), 10)
    return np.array([k * phase * rng.normal(1, 0.03, rounds) for k in kernels])


def test_identical_kernels_rank_together_under_drift_and_real_differences_stay():
    raw = drifting_rounds([1e-3, 1e-3, 1e-3, 2e-3])
    sequential = [np.median(raw[i, 50 * i:50 * i + 50]) for i in range(3)]  # timed one after another
    medians = np.median(normalise(raw), axis=1)
    assert max(medians[:3]) / min(medians[:3]) < 1.02 < max(sequential) / min(sequential)
    assert 1.95 < medians[3] / medians[0] < 2.05


def test_a_slowdown_of_one_case_leaves_the_others_figures():
    raw = drifting_rounds([1e-3, 1e-3, 3e-3])
    slowed = raw.copy()
    slowed[2] *= 1.5
    np.testing.assert_allclose(normalise(slowed)[:2], normalise(raw)[:2])


def test_median_interval_covers_the_median_and_narrows_with_more_rounds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(1, 0.1, 30), rng.normal(1, 0.1, 1000)
    (lo1, hi1), (lo2, hi2) = median_interval(few, 0.95), median_interval(many, 0.95)
    assert lo1 < np.median(few) < hi1 and lo2 < np.median(many) < hi2 and hi2 - lo2 < hi1 - lo1


def test_panel_times_every_case_in_rounds_and_keeps_a_failing_case_apart():
    calls = {"ok": 0}

    def ok():
        calls["ok"] += 1
        sum(range(200))

    def breaks_later():
        if calls["ok"] > 40:
            raise RuntimeError("runtime crashed")

    def never():
        raise ValueError("cannot run")

    timed = time_panel({"a": ok, "b": lambda: sum(range(200)), "c": breaks_later, "d": never},
                       PanelTiming(seconds_per_case=0.01, warmup_calls=2, min_rounds=12))
    assert isinstance(timed["d"].error, ValueError) and isinstance(timed["c"].error, RuntimeError)
    for name in "ab":
        c: CaseLatency = timed[name]
        assert c.error is None and len(c.rounds_s) == len(c.raw_s) >= 12 and c.calls_per_round >= 1
        assert c.ci_s[0] <= c.median_s <= c.ci_s[1] and c.first_run_s > 0


def test_reloaded_panel_opens_each_case_once_per_load_and_pools_its_rounds():
    import contextlib
    from edgeopt.latency import time_reloaded
    opened = {"a": 0, "b": 0, "c": 0}

    @contextlib.contextmanager
    def open_case(name):
        if name == "c":
            raise OSError("cannot load")
        opened[name] += 1
        yield lambda: sum(range(200))

    timed = time_reloaded(open_case, ["a", "b", "c"], PanelTiming(seconds_per_case=0.01, warmup_calls=2,
                                                                  min_rounds=12), loads=3)
    assert opened == {"a": 3, "b": 3, "c": 0} and isinstance(timed["c"].error, OSError)
    for name in "ab":
        c = timed[name]
        assert len(c.load_medians_s) == 3 and len(c.rounds_s) >= 12 and c.ci_s[0] <= c.median_s <= c.ci_s[1]


def test_panels_timed_one_after_another_share_one_scale_through_their_anchor():
    from edgeopt.latency import on_scale

    def panel(anchor_s, case_s):
        return {"anchor": CaseLatency(median_s=anchor_s, rounds_s=[anchor_s], ci_s=(anchor_s, anchor_s)),
                "x": CaseLatency(median_s=case_s, rounds_s=[case_s, case_s], ci_s=(0.9 * case_s, 1.1 * case_s),
                                 raw_s=[case_s])}
    first, reference = on_scale(panel(1e-3, 2e-3), "anchor", None)
    assert reference == 1e-3 and first["x"].median_s == 2e-3
    slower, kept = on_scale(panel(1.3e-3, 2.6e-3), "anchor", reference)  # the next panel met a 30% slower phase
    assert kept == pytest.approx(1e-3) and slower["anchor"].median_s == pytest.approx(1e-3)
    assert slower["x"].median_s == pytest.approx(2e-3) and slower["x"].ci_s[1] == pytest.approx(2.2e-3)
    assert slower["x"].rounds_s == pytest.approx([2e-3, 2e-3]) and slower["x"].raw_s == [2.6e-3]  # raw: as timed
    broken = {"anchor": CaseLatency(error=RuntimeError("cannot load")), "x": CaseLatency(median_s=5e-3)}
    assert on_scale(broken, "anchor", reference) == (broken, reference)
