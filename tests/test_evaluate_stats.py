"""The numbers behind eval.json's intervals and agreement, against values computed by hand
and against the worked example published with Krippendorff's alpha."""

from __future__ import annotations

import math

import pytest

from simulator.evaluate.stats import bootstrap_ci, interval_alpha, mean

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 observers,
# 12 units, values 1-5, missing values as None. Published: interval alpha = 0.849.
KRIPPENDORFF_2011 = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_alpha_matches_the_published_worked_example() -> None:
    assert interval_alpha(KRIPPENDORFF_2011) == pytest.approx(0.849, abs=0.0005)


def test_alpha_matches_a_hand_computed_fixture() -> None:
    # Units (1,2), (3,3), (5,4). Observed disagreement: ordered pairs within units give
    # (1+1) + 0 + (1+1) = 4 over n = 6 values -> Do = 2/3. Expected: all 30 ordered pairs of
    # the six values {1,2,3,3,5,4}: sum of squared differences = 2 * n * SS = 2*6*10 = 120,
    # over n(n-1) = 30 -> De = 4. Alpha = 1 - (2/3)/4 = 5/6.
    assert interval_alpha([[1, 3, 5], [2, 3, 4]]) == pytest.approx(5 / 6)
    # Perfect agreement with variation between units is 1; a reversed coder is below 0.
    assert interval_alpha([[1, 3, 5], [1, 3, 5]]) == pytest.approx(1.0)
    reversed_alpha = interval_alpha([[1, 3, 5], [5, 3, 1]])
    assert reversed_alpha is not None and reversed_alpha < 0


def test_alpha_is_none_where_it_is_undefined() -> None:
    assert interval_alpha([[1, 2, 3]]) is None  # one repeat
    assert interval_alpha([[4, 4, 4], [4, 4, 4]]) is None  # no variation at all
    assert interval_alpha([[1, None], [None, 2]]) is None  # no unit judged twice
    # units rated once are left out, not counted as agreement
    assert interval_alpha([[1, 3, 5, 2], [2, 3, 4, None]]) == pytest.approx(5 / 6)


def test_bootstrap_of_two_sessions_spans_both_ends() -> None:
    # Resampled means of {0, 6} are 0, 3, 6 with probabilities 1/4, 1/2, 1/4: the 2.5th and
    # 97.5th percentiles fall inside the end masses.
    assert bootstrap_ci([0.0, 6.0]) == (0.0, 6.0)


def test_bootstrap_matches_the_binomial_percentiles() -> None:
    # {0, 0, 0, 6}: a resample's mean is 1.5 k with k ~ Binomial(4, 1/4). P(k <= 2) = 0.949 and
    # P(k <= 3) = 0.996, so the 97.5th percentile is at k = 3 (4.5); P(k = 0) = 0.316, so the
    # 2.5th is 0. With 2,000 draws both sit well inside their mass.
    assert bootstrap_ci([0.0, 0.0, 0.0, 6.0]) == (0.0, 4.5)


def test_bootstrap_of_many_sessions_is_close_to_the_normal_interval() -> None:
    values = [float(v % 7) for v in range(140)]  # 0..6, 20 times each
    low, high = bootstrap_ci(values) or (math.nan, math.nan)
    centre = mean(values) or 0.0
    sd = math.sqrt(sum((v - centre) ** 2 for v in values) / len(values))
    half = 1.96 * sd / math.sqrt(len(values))
    assert low == pytest.approx(centre - half, abs=0.06)
    assert high == pytest.approx(centre + half, abs=0.06)


def test_bootstrap_is_seeded_and_degenerate_cases_are_exact() -> None:
    values = [i**1.5 for i in range(30)]
    assert bootstrap_ci(values) == bootstrap_ci(list(values))  # seed 0, whatever ran before
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values)
    assert bootstrap_ci([3.0]) == (3.0, 3.0)
    assert bootstrap_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_ci([]) is None and mean([]) is None
