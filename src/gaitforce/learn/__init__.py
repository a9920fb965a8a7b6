"""Learning: the model registry (:mod:`~gaitforce.learn.models`), the estimator (:mod:`~gaitforce.learn.training`),
the sweep, bundles (export, int8, loading) and importance maps."""
