"""Simulated UED beamline: materials, physics backend, synthetic data sets, ophyd devices.

A material's class names, phases and cells live in :mod:`uedsteer.sim_devices.materials`
(``get_material("MoTe2")``).
"""
