"""Exports for lab leads: verifiable bundles, LeRobot v3 datasets, ACT/ALOHA HDF5.

Every exporter writes under a temporary name beside its output and renames it into place only
when complete (:mod:`teleop.export.atomic`), so an interrupted export never leaves a half-file
under its final name.
"""
