"""From trials to a dataset: marker slots and features, ingest, the dataset store, the synthetic cohort.

The JSON files beside these modules are the packaged marker maps and the normative gait curves."""
