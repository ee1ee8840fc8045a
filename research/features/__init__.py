"""Frames -> frozen CNN -> scales -> HDF5: everything that makes and describes a feature file.

``settings`` (what determines a feature sequence), ``frames`` (the decode -> CNN -> scales path),
``extraction`` (``extract(cfg)``, resumable, sharded under torchrun), ``timestamps`` (one feature
per given instant, seed 002), ``hdf5`` (the file format), ``parts`` (a fused file's backbones),
``compat`` (the one compatibility rule) and ``summary`` (what a result was measured on).
"""
