"""Crystal-structure prediction from electron-diffraction Bragg lists (random forests).

One job a module: :mod:`.bragg_lists` (checks, detector window, orientation, preprocessing);
:mod:`.featurizer` (Bragg lists → model inputs, validated settings) with the feature maths in
:mod:`.features` and :mod:`.zone`; :mod:`.fitting` (the estimators and their fits);
:mod:`.predictor` (the hierarchy crystal system → space group and lattice); :mod:`.votes`
(tree votes, difference aggregation); :mod:`.results`; :mod:`.persistence` (save/load);
:mod:`.train` (``uedsteer train crystal``) and :mod:`.evaluation` (its test figures);
:mod:`.peaks` (UED frames → Bragg lists) with :mod:`.frame_background`; :mod:`.maps` (4D-STEM
maps) and :mod:`.maps_plot` (their PNG).
"""
