"""Frames -> frozen CNN -> scales -> HDF5: everything that makes and describes a feature file.

``settings`` (what determines a feature sequence), ``frames`` (the decode -> CNN -> scales path),
``extraction`` (``extract(cfg)``, resumable, sharded under torchrun), ``timestamps`` (one feature
per given instant), ``hdf5`` (the file format, and what a result was measured on), ``parts``
(some backbones of a fused file) and ``compat`` (the one compatibility rule).
"""
