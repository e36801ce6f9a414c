"""Kayenta's own classifier and scorer test cases, reproduced.

Cases come from spinnaker/kayenta (Apache License 2.0):

* ``kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ClassifierSuite.scala`` (the
  ``MannWhitneyClassifier`` tests; they use tolerance 0.10 and confidence 0.95 instead of the
  judge's 0.25 / 0.98, so the metrics here set those);
* ``kayenta-judge/src/test/scala/com/netflix/kayenta/judge/ScorerSuite.scala``
  (``WeightedSumScorer``).

The Mann-Whitney and IQR detector suites are reproduced with ``judge.stats``.
"""

from __future__ import annotations

from typing import Any

import pytest

from judge import classify_metric
from judge.config import CanaryConfig, JudgeMode, MetricConfig, ScoreThresholds
from judge.report import Classification, MetricResult
from judge.scoring import score_report

# ClassifierSuite.scala data sets (30 points each).
CONTROL_10 = [
    11.1453586774086, 9.9618059885597017, 7.068574306369829, 7.3012661810483657,
    9.7944630265656727, 9.6037918603687302, 6.1867793350339388, 12.345599159550174,
    10.371891733859533, 8.6094300785016724, 9.913162673361084, 10.361375299003466,
    14.206800387518818, 10.946153754753301, 10.215876627044048, 11.739760899484603,
    10.907627468626439, 12.823353694464775, 8.1018609771732137, 8.4981616408804932,
    12.113441374697231, 13.272210809932028, 10.114579381663297, 6.9463958767978067,
    6.2105278541727778, 10.160401684903775, 8.3457712066455461, 8.383822063895833,
    7.0020205070083765, 10.755757401808442,
]  # fmt: skip
EXPERIMENT_10 = [
    9.7767343120109462, 10.587071850477695, 7.8375506388901766, 9.3243326886113884,
    8.3774505409784421, 8.9359264399606282, 8.2707663324728511, 9.7484308126716925,
    11.623746715547156, 9.2753442679633942, 8.1538047749171518, 10.562020975754294,
    13.498135575451835, 11.054419256110332, 6.9538903590055092, 12.521008342195479,
    9.0216358603546443, 4.9234856699531662, 11.251360203607172, 11.598449508040337,
    8.435232204668182, 11.110228516867279, 10.70063380164755, 8.9212773652115249,
    10.086167067942661, 11.42107515483087, 9.3792347813644952, 7.7980320148552593,
    10.62339807275746, 11.909642062063739,
]  # fmt: skip
EXPERIMENT_20 = [
    20.878412601720026, 21.78550581191622, 19.70828084717019, 15.859946903461562,
    19.510058772176841, 19.392005525270303, 22.926528314912101, 17.156530276709894,
    18.655117916226171, 23.422607911610392, 24.055817684156644, 22.62689958516501,
    21.979472967817678, 21.659318607218694, 20.067707574072426, 22.119570836305414,
    16.44037132663307, 21.559622826341268, 21.000181443489218, 17.779369411412663,
    17.806006358943584, 18.537200618386109, 20.555550300210797, 19.552928184468378,
    21.771118944087092, 21.809622806176627, 20.961762909905271, 20.977571577503021,
    19.106303205498794, 16.976918966987078,
]  # fmt: skip
CONTROL_20 = [
    20.758113589510348, 22.802059629464559, 20.612340363492208, 20.973274654749986,
    23.469237330498622, 21.53133988954805, 21.767353687439805, 18.308050730374301,
    19.062145167827566, 25.879498436001779, 18.982629726336128, 19.387920182269266,
    18.995398251246982, 24.228420230932805, 20.050985172694688, 18.2340451091756,
    17.870515494460435, 23.058103863806618, 18.400259567501134, 16.971352091177167,
    19.467529066052151, 17.90465423342031, 17.553948617825831, 16.104611843907193,
    24.38171081433039, 15.919294339922635, 20.479409626304697, 19.08307201492406,
    17.455788050722866, 18.853826823235142,
]  # fmt: skip


def _metric(direction: str = "either", *, critical: bool = False, nan: str = "remove",
            effect: dict[str, float] | None = None) -> MetricConfig:
    """A metric judged like ``new MannWhitneyClassifier(tolerance = 0.10, confLevel = 0.95,
    effectSizeThresholds, criticalThresholds)`` in ClassifierSuite."""
    return MetricConfig.model_validate(
        {
            "name": "test-metric",
            "direction": direction,
            "critical": critical,
            "nan_strategy": nan,
            "test": {"confidence": 0.95, "tolerance": 0.10, "effect_size": effect or {}},
        }
    )


def _classify(metric: MetricConfig, control: list[float], experiment: list[float]) -> MetricResult:
    return classify_metric(metric, JudgeMode.KAYENTA, control, experiment)


# (ClassifierSuite test name, direction, control, experiment, expected classification)
DIRECTIONAL_CASES = [
    ("Mann-Whitney Classifier Test: Pass Metric", "either", CONTROL_10, EXPERIMENT_10, "pass"),
    ("Mann-Whitney Classifier Test: High Metric", "either", CONTROL_10, EXPERIMENT_20, "high"),
    ("Mann-Whitney Classifier Test: Low Metric", "either", CONTROL_20, EXPERIMENT_10, "low"),
    ("Mann-Whitney Classifier Directional Test: Increase", "increase", CONTROL_20, EXPERIMENT_10,
     "pass"),
    ("Mann-Whitney Classifier Directional Test: Decrease", "decrease", CONTROL_10, EXPERIMENT_20,
     "pass"),
    ("Mann-Whitney Classifier Directional Test: High Metric", "increase", CONTROL_10,
     EXPERIMENT_20, "high"),
    ("Mann-Whitney Classifier Directional Test: Low Metric", "decrease", CONTROL_20,
     EXPERIMENT_10, "low"),
    ("Mann-Whitney Tied Observations", "decrease", [1.0, 1.0], [1.0, 1.0, 1.0], "pass"),
    ("Mann-Whitney Identical Populations", "decrease", [5.0, 4.0, 3.0, 2.0, 1.0],
     [1.0, 2.0, 3.0, 4.0, 5.0], "pass"),
    ("Mann-Whitney Leading Zero Identical Population", "decrease", [1.0] * 5,
     [0.0, 1.0, 1.0, 1.0, 1.0], "pass"),
    ("Mann-Whitney Missing Experiment Data", "decrease", [1.0, 2.0, 3.0, 4.0, 5.0], [],
     "nodata"),
    ("Mann-Whitney Majority Tied Observations", "either", [1.0] * 5, [1.0, 1.0, 1.0, 1.0, 10.0],
     "pass"),
    ("Mann-Whitney Tied Ranks", "either", [1.0] * 5, [10.0] * 5, "high"),
    ("Mann-Whitney Tied Ranks With Zeros", "either", [0.0] * 5, [10.0] * 5, "high"),
]


@pytest.mark.parametrize(
    ("direction", "control", "experiment", "expected"),
    [case[1:] for case in DIRECTIONAL_CASES],
    ids=[case[0] for case in DIRECTIONAL_CASES],
)
def test_classifier_suite_directions(
    direction: str, control: list[float], experiment: list[float], expected: str
) -> None:
    result = _classify(_metric(direction), control, experiment)
    assert result.classification == Classification(expected)
    assert not result.critical_failure


# "Mann-Whitney Classifier Test: High Metric (Large Input)" and "Mean Ratio Effect Size: Pass
# (Large Input)": error rates, mostly tied zeros (copied as they are in ClassifierSuite.scala).
LARGE_EXPERIMENT = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6666666666666572, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.7037037037036811, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142,
    0.0, 0.0, 0.0, 0.0, 3.3333333333333428, 0.0, 1.7543859649122737, 0.0,
    1.8518518518518476, 0.0, 0.0, 1.8518518518518476, 0.0, 0.0, 1.5151515151515156,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.7857142857142776,
    1.3333333333333286, 0.0, 3.1250000000000142, 1.9607843137255117,
    1.4492753623188293, 2.4390243902438868, 1.6393442622950687, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.6129032258064484, 1.9607843137255117, 1.5873015873015817, 0.0,
    0.0, 2.8169014084507182, 0.0, 0.0, 3.0303030303030454, 0.0, 0.0,
    3.3898305084745743, 0.0, 0.0, 1.234567901234584, 0.0, 0.0, 0.0, 0.0,
    1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 1.6949152542372872, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.470588235294116, 0.0, 0.0, 1.3698630136986196,
    3.225806451612911, 1.7543859649122879, 3.4482758620689538, 0.0,
    3.3333333333333428, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 0.0,
    1.4285714285714448, 0.0, 0.0, 1.8867924528301927, 2.0000000000000284, 0.0, 0.0,
    0.0, 2.985074626865682, 0.0, 0.0, 1.6666666666666714, 0.0, 0.0, 1.5625,
    1.9230769230769198, 0.0, 1.8518518518518619, 0.0, 2.7027027027027088, 0.0, 0.0,
    0.0, 1.3513513513513544, 0.0, 1.818181818181813, 0.0, 1.6666666666666572, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.818181818181813, 0.0, 1.4285714285714164, 0.0,
    0.0, 4.1095890410959015, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0,
    1.8518518518518476, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0, 1.8867924528301785,
    1.4285714285714164, 0.0, 0.0, 1.5625, 1.8867924528301927, 0.0, 0.0, 0.0, 0.0,
    2.040816326530603, 1.818181818181813, 0.0, 0.0, 1.6393442622950687, 0.0,
    1.7241379310344769, 1.5151515151515156, 2.564102564102555, 0.0, 0.0, 0.0, 0.0,
    5.5555555555555571, 0.0, 0.0, 4.0816326530612059, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 3.5714285714285836, 0.0, 2.040816326530603, 3.1746031746031633, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
]  # fmt: skip
LARGE_CONTROL = [
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5625000000000142, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.3888888888888857, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 1.5384615384615614, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0,
    1.6949152542373014, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 1.470588235294116, 0.0, 0.0, 0.0, 0.0, 1.7543859649122879, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.8518518518518619, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.6393442622950687, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 1.7241379310344769, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5873015873015817,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.4925373134328339, 0.0, 0.0, 0.0, 3.1249999999999858, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 1.4925373134328339, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    2.9850746268656536, 0.0, 2.5000000000000284, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
    1.7857142857142776, 0.0, 0.0, 0.0,
]  # fmt: skip


def test_classifier_suite_large_input_with_ties_is_high() -> None:
    """ClassifierSuite "High Metric (Large Input)": many tied zeros, asymptotic interval.

    The Hodges-Lehmann estimate is a root-search artefact next to 0 and the interval's low end
    (another one) sits above 0.1 of it: High, in R, in Kayenta, and here. Pinned to R 4.x::

        r <- wilcox.test(x, y, conf.int = TRUE, conf.level = 0.95, exact = FALSE,
                         correct = TRUE)   # x = LARGE_EXPERIMENT, y = LARGE_CONTROL
        r$conf.int   # 3.52175537770216e-05 2.02456461662334e-05
        r$estimate   # 1.51518185208943e-05
        r$p.value    # 2.833448e-09
    """
    result = _classify(_metric("either"), LARGE_CONTROL, LARGE_EXPERIMENT)
    assert result.classification is Classification.HIGH
    assert result.details["method"] == "asymptotic"
    assert result.low == pytest.approx(3.52175537770216e-05, rel=1e-6)
    assert result.high == pytest.approx(2.02456461662334e-05, rel=1e-6)
    assert result.estimate == pytest.approx(1.51518185208943e-05, rel=1e-6)
    assert result.p_value == pytest.approx(2.833448e-09, rel=1e-6)
    assert not result.critical_failure


def test_classifier_suite_mean_ratio_pass_large_input() -> None:
    """ClassifierSuite "Mean Ratio Effect Size: Pass (Large Input)": thresholds (1.0, 5.0)."""
    metric = _metric("either", effect={"allowed_decrease": 1.0, "allowed_increase": 5.0})
    result = _classify(metric, LARGE_CONTROL, LARGE_EXPERIMENT)
    assert result.classification is Classification.PASS
    assert 1.0 < result.effect_size < 5.0


SMALL_HIGH_EXPERIMENT = [20.0, 22.0, 21.0, 25.0, 30.0]
SMALL_HIGH_CONTROL = [1.0, 2.2, 1.1, 2.5, 3.0]

# (ClassifierSuite test name, critical, effect-size limits, control, experiment,
#  expected classification, expected result.critical)
EFFECT_SIZE_CASES: list[tuple[str, bool, dict[str, float], list[float], list[float], str, bool]]
EFFECT_SIZE_CASES = [
    ("Mean Ratio Effect Size: High", False, {"allowed_decrease": 0.8, "allowed_increase": 1.2},
     SMALL_HIGH_CONTROL, SMALL_HIGH_EXPERIMENT, "high", False),
    ("Mean Ratio Effect Size: Pass", False, {"allowed_decrease": 0.5, "allowed_increase": 1.0},
     [20.0, 22.0, 21.0, 25.0, 30.0], [10.0, 12.2, 10.1, 12.5, 23.0], "pass", False),
    ("Critical Effect Size: Critical High", True,
     {"critical_decrease": 1.0, "critical_increase": 1.2},
     SMALL_HIGH_CONTROL, SMALL_HIGH_EXPERIMENT, "high", True),
    ("Critical Effect Size: Critical Low", True,
     {"critical_decrease": 1.2, "critical_increase": 1.0},
     [10.0, 20.2, 10.1, 20.5, 30.0], [2.0, 2.0, 2.0, 2.0, 3.0], "low", True),
    ("Critical Effect Size: High", True,
     {"allowed_decrease": 1.0, "allowed_increase": 5.0, "critical_decrease": 1.0,
      "critical_increase": 13.0},
     SMALL_HIGH_CONTROL, SMALL_HIGH_EXPERIMENT, "high", False),
    ("Critical Effect Size: Pass", True,
     {"allowed_decrease": 1.0, "allowed_increase": 13.0, "critical_decrease": 1.0,
      "critical_increase": 15.0},
     SMALL_HIGH_CONTROL, SMALL_HIGH_EXPERIMENT, "pass", False),
    ("Critical Effect Size: Critical High (Default Thresholds)", True, {},
     SMALL_HIGH_CONTROL, SMALL_HIGH_EXPERIMENT, "high", True),
]  # fmt: skip


@pytest.mark.parametrize(
    ("critical", "effect", "control", "experiment", "expected", "critical_failure"),
    [case[1:] for case in EFFECT_SIZE_CASES],
    ids=[case[0] for case in EFFECT_SIZE_CASES],
)
def test_classifier_suite_effect_sizes(
    critical: bool,
    effect: dict[str, float],
    control: list[float],
    experiment: list[float],
    expected: str,
    critical_failure: bool,
) -> None:
    result = _classify(_metric("either", critical=critical, effect=effect), control, experiment)
    assert result.classification == Classification(expected)
    assert result.critical_failure is critical_failure


def test_classifier_suite_mean_ratio_low_decrease() -> None:
    """ClassifierSuite "Mean Ratio Effect Size: Low": direction decrease, thresholds (0.8, 1.2)."""
    metric = _metric("decrease", effect={"allowed_decrease": 0.8, "allowed_increase": 1.2})
    result = _classify(metric, CONTROL_20, EXPERIMENT_10)
    assert result.classification is Classification.LOW
    assert result.effect_size == pytest.approx(sum(EXPERIMENT_10) / sum(CONTROL_20))


def test_classifier_suite_missing_data_critical_metric() -> None:
    """"Missing Experiment Data: Critical Metric": Nodata flagged critical (fails the canary)."""
    result = _classify(_metric("decrease", critical=True), [1.0, 2.0, 3.0, 4.0, 5.0], [])
    assert result.classification is Classification.NODATA
    assert result.critical_failure


def test_classifier_suite_missing_data_with_nan_replacement_passes() -> None:
    """"Missing Experiment Data with NaN Replacement": Pass."""
    result = _classify(_metric("decrease", nan="replace"), [1.0, 2.0, 3.0, 4.0, 5.0], [])
    assert result.classification is Classification.PASS


def test_classifier_suite_missing_data_reason_string() -> None:
    """"Missing Data: Reason String": the reason is not empty."""
    result = _classify(_metric("decrease", critical=True), [], [])
    assert result.reason
    assert "No baseline and canary points" in result.reason


# -- ScorerSuite.scala -----------------------------------------------------------------------


def _result(name: str, classification: str, group: str, *, critical: bool = False
            ) -> MetricResult:
    return MetricResult(
        name=name,
        classification=Classification(classification),
        reason="",
        groups=(group,),
        critical=critical,
        critical_failure=critical and classification != "pass",
    )


def _score(weights: dict[str, float], results: list[MetricResult]) -> tuple[float, Any]:
    config = CanaryConfig.model_validate(
        {"mode": "kayenta", "groups": weights,
         "metrics": [{"name": r.name, "groups": list(r.groups)} for r in results]}
    )
    report = score_report(config, results, ScoreThresholds())
    return report.score, report


SCORER_CASES: list[tuple[str, dict[str, float], list[MetricResult], float]] = [
    ("Single Metric Pass", {}, [_result("pass", "pass", "test-group")], 100.0),
    ("Single Metric Fail", {}, [_result("high", "high", "test-group")], 0.0),
    ("Single group Nodata", {}, [_result("nodata", "nodata", "test-group-nodata")], 0.0),
    ("Two Groups, one Pass, one Nodata", {},
     [_result("pass1a", "pass", "test-group-pass"), _result("pass1b", "pass", "test-group-pass"),
      _result("nodata", "nodata", "test-group-nodata")], 100.0),
    ("One Group, Two Metrics", {},
     [_result("pass", "pass", "test-group"), _result("high", "high", "test-group")], 50.0),
    ("One Group, Three Metrics", {},
     [_result("pass", "pass", "g"), _result("high", "high", "g"), _result("low", "low", "g")],
     33.33),
    ("Two Groups, Three Metrics", {"group-1": 75.0, "group-2": 25.0},
     [_result("pass-1", "pass", "group-1"), _result("pass-2", "pass", "group-1"),
      _result("fail", "high", "group-2")], 75.0),
    ("Two Groups, Three Metrics (Equal Weight)", {"group-1": 50.0, "group-2": 50.0},
     [_result("pass", "pass", "group-1"), _result("fail-1", "high", "group-1"),
      _result("fail-2", "high", "group-2")], 25.0),
    ("Two Groups, Three Metrics (Equal Weight), one NoData", {"group-1": 50.0, "group-2": 50.0},
     [_result("pass", "pass", "group-1"), _result("nodata", "nodata", "group-1"),
      _result("fail", "high", "group-2")], 50.0),
    ("Two Metrics, one good (normal), one fail (critical)", {},
     [_result("pass", "pass", "test-group"),
      _result("high", "high", "test-group", critical=True)], 0.0),
    ("Two Metrics, one low (normal), one good (critical)", {},
     [_result("low", "low", "test-group"),
      _result("pass2", "pass", "test-group", critical=True)], 50.0),
    ("Two Metrics, one good (normal), one nodata (critical)", {},
     [_result("pass", "pass", "test-group"),
      _result("nodata", "nodata", "test-group", critical=True)], 0.0),
    ("Two Groups (Unequal Weight), Four Metrics", {"group1": 15.0, "group2": 85.0},
     [_result("high", "high", "group1"), _result("low", "low", "group1"),
      _result("pass", "pass", "group1"), _result("pass2", "high", "group2")], 5.0),
]  # fmt: skip


@pytest.mark.parametrize(
    ("weights", "results", "expected"),
    [case[1:] for case in SCORER_CASES],
    ids=[case[0] for case in SCORER_CASES],
)
def test_scorer_suite(weights: dict[str, float], results: list[MetricResult], expected: float
                      ) -> None:
    score, _ = _score(weights, results)
    assert score == expected


def test_scorer_suite_nodata_group_scores_zero_but_counts_as_full() -> None:
    """ScorerSuite "Two Groups, one Pass, one Nodata": group scores are 0 and 100, total 100."""
    _, report = _score(
        {},
        [
            _result("pass1a", "pass", "test-group-pass"),
            _result("pass1b", "pass", "test-group-pass"),
            _result("nodata", "nodata", "test-group-nodata"),
        ],
    )
    assert sorted(g.score for g in report.groups) == [0.0, 100.0]
