"""Signal processing of a :class:`~gaitforce.Trial`: each step takes a Trial and returns a new one.

- :mod:`~gaitforce.signal.filters`: zero-lag and causal Butterworth low-pass;
- :mod:`~gaitforce.signal.gaps`: gap filling of marker trajectories;
- :mod:`~gaitforce.signal.stances`: the one segmentation of a trial into :class:`Stance` records;
- :mod:`~gaitforce.signal.mirror`: side names, mirroring of left stances, progression alignment;
- :mod:`~gaitforce.signal.emg`: EMG envelopes.
"""
