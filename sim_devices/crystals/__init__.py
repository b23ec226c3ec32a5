"""Random crystals and their electron-diffraction Bragg lists: the random-forest training set.

One job a module: :mod:`.systems` (crystal systems and space-group ranges), :mod:`.settings`
(what a store is made with), :mod:`.draws` and :mod:`.sources` (where a crystal comes from),
:mod:`.simulate` (one material's Bragg lists), :mod:`.store` (writing a store, resumably) and
:mod:`.dataset` (reading it back, the material split).
"""
