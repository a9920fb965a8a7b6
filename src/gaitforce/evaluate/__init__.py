"""Evaluation: splitters and metrics as pure functions, summary tables, reports and the Grand Challenge
benchmark. The public splitters, metrics and summaries are importable from here."""

from gaitforce.evaluate.metrics import (
                                        BODY_WEIGHT_RANGE,
                                        METRIC_COLUMNS,
                                        body_weights,
                                        pearson_r,
                                        per_trial_metrics,
                                        with_stance_info,
)
from gaitforce.evaluate.splits import (
                                        SCHEMES,
                                        SET_NAMES,
                                        leave_one_group_out,
                                        make_splits,
                                        same_subject,
                                        subject_exposed_split,
                                        subject_naive_split,
)
from gaitforce.evaluate.tables import (
                                        DISPLAY,
                                        decimals,
                                        mean_std,
                                        paired_comparison,
                                        predictions_frame,
                                        summarise,
)

__all__ = ["METRIC_COLUMNS", "BODY_WEIGHT_RANGE", "body_weights", "pearson_r", "per_trial_metrics",
           "with_stance_info", "SCHEMES", "SET_NAMES", "leave_one_group_out", "make_splits", "same_subject",
           "subject_exposed_split", "subject_naive_split", "DISPLAY", "decimals", "mean_std", "paired_comparison",
           "predictions_frame", "summarise"]
