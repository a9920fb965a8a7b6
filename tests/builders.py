"""Builders shared by several test modules (importable under both `pytest` and `python -m pytest`: pytest puts
this folder on sys.path for its test modules)."""

from __future__ import annotations

import pandas as pd

from gaitforce.data import features, ingest, synthetic
from gaitforce.data.dataset import ID_COLUMNS, Dataset
from gaitforce.learn.export import save_bundle

MAP = "plug-in-gait"


def linear_dataset() -> Dataset:
    """2 synthetic walks with a knee_medial target that is a known linear mix of features."""
    settings = ingest.IngestSettings(marker_map=MAP, targets=("knee_medial",))
    trials = synthetic.generate_cohort(n_subjects=2, trials_per_subject=1, seed=0)
    frames = pd.concat([ingest.trial_frames(t, settings=settings) for t in trials], ignore_index=True)
    frames["knee_medial"] = 2.0 * frames["grf_y"] + 500.0 * frames["knee_lat_x"]
    cols = features.feature_columns()
    manifest = {"features": cols, "feature_sets": features.feature_sets_manifest(), "targets": {"knee_medial": "N"},
                "settings": settings.to_dict(), "sources": []}
    return Dataset(frames[ID_COLUMNS + cols + ["knee_medial"]], manifest)


def make_bundle(path, feature_set="all"):
    """A ridge bundle on :func:`linear_dataset`."""
    from gaitforce.learn.training import Estimator

    ds = linear_dataset()
    est = Estimator("ridge", feature_set=feature_set, targets=("knee_medial",), threads=1, verbose=False).fit(ds)
    return save_bundle(est, path, dataset_manifest=ds.manifest)


def make_ensemble_bundle(path, *, q=2.0):
    """A 2-member mlp ensemble bundle on :func:`linear_dataset` with a set interval (q = ``q``, eps = 1 N)."""
    from gaitforce.evaluate.conformal import calibration_entry
    from gaitforce.learn.ensemble import EnsembleEstimator

    ds = linear_dataset()
    ens = EnsembleEstimator("mlp", members=2, targets=("knee_medial",), threads=1, verbose=False, epochs=2, width=8)
    ens.fit(ds, None)
    ens.eps_[:] = 1.0
    ens.uncertainty_ = calibration_entry([q], [1.0], ["knee_medial"], alpha=0.1, n_stances=9, n_frames=900)
    return save_bundle(ens, path, dataset_manifest=ds.manifest)
