"""Crystal-structure prediction from electron-diffraction Bragg lists (random forests).

One job a module: :mod:`.featurizer` (Bragg lists → model inputs, validated settings) with the
feature maths in :mod:`.features` and :mod:`.zone`; :mod:`.fitting` (the estimators and their
fits); :mod:`.predictor` (the hierarchy crystal system → space group and lattice);
:mod:`.votes` (tree votes, difference aggregation); :mod:`.results`; :mod:`.persistence`
(save/load); :mod:`.train` (``uedsteer train crystal``); :mod:`.peaks` (UED frames → Bragg
lists) and :mod:`.maps` (4D-STEM maps).
"""
