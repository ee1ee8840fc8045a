"""The command lines: one ``python -m`` module each, parsing arguments and calling the library.

    python -m research.commands.pipeline --config experiments/demo.yaml       # videos -> tracked ensemble
    python -m research.commands.cv --config experiments/real.yaml              # grouped cross-validation
    python -m research.commands.ablation A.yaml B.yaml --seeds 1 2 3           # arms x seeds, with statistics
    python -m research.commands.features inspect|merge|select ...              # HDF5 feature files
    python -m research.commands.backbones provision|list                       # offline weights, the table

The top-level ``train.py``, ``extract.py`` and ``evaluate.py`` are the stage commands. Nothing in the
library imports these (``tests/test_layout.py`` checks it, ``__main__`` guards included), so
``python -m`` runs each module once.
"""
