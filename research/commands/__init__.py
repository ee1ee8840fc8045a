"""The command lines of library modules: one ``python -m`` module per library module, parse and call.

    python -m research.commands.features inspect FILE.h5 [...]   # attributes, shapes, skipped and partial inputs
    python -m research.commands.features merge OUT.h5 A.h5 B.h5   # concatenate files made the same way
    python -m research.commands.backbones provision|list          # offline mobilenet_v2 weights; what is cached

Nothing in the library imports these (``tests/test_layout.py`` checks it, ``__main__`` guards
included), so ``python -m`` runs each module once.
"""
