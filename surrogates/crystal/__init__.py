"""Crystal-structure prediction from electron-diffraction Bragg lists (random forests)."""
