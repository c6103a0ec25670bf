"""The benches' ratio: pairs taken back to back cancel the machine's drift."""

from __future__ import annotations

import math

from bench.stats import paired_ratio


def test_drift_common_to_a_pair_cancels() -> None:
    # the machine slows by half between rounds; Hearth is 0.96x the peer in every pair
    reference = [100.0, 50.0, 100.0, 50.0]
    hearth = [96.0, 48.0, 96.0, 48.0]
    assert paired_ratio(hearth, reference) == 0.96
    # the same samples compared by means would read 0.96 too only by luck of balance:
    # shift one pair and means drift, the paired median does not
    assert paired_ratio([96.0, 48.0, 48.0], [100.0, 50.0, 50.0]) == 0.96


def test_one_bad_pair_does_not_move_the_median() -> None:
    reference = [60.0, 61.0, 59.0, 60.0, 60.0]
    hearth = [59.0, 60.0, 20.0, 59.0, 59.0]  # one pair hit by a burst of other load
    assert abs(paired_ratio(hearth, reference) - 59.0 / 60.0) < 1e-9


def test_unpaired_samples_fall_back_to_medians_and_nan_is_left_out() -> None:
    assert paired_ratio([2.0, 4.0, 6.0], [2.0, 4.0]) == 4.0 / 3.0
    assert paired_ratio([math.nan, 10.0], [5.0, 5.0]) == 2.0
    assert math.isnan(paired_ratio([], [1.0]))
