"""Frozen image backbones: the table of names and their preprocessing (``table``, torch-free), and
building them with their weights, provisioned offline where a package ships them (``loading``).
"""
