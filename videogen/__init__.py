"""videogen: the procedural 4-class demo videos for the project's demo, tests and benchmarks.

No real collection can be downloaded here, so the project draws its own. This package is a
tool beside ``research`` (it may use ``research``'s errors and command-line helpers; ``research``
never imports it). Where things are:

- ``catalogue``: every subcategory (class, renderer, parameters), in the order that seeds videos;
- ``animation/``, ``flat_content/``, ``gaming/``, ``natural_content/``: one package per class, its
  renderers and their parameters;
- ``drawing``: what every renderer draws with (fonts, photographs, textures, sprites, noise);
- ``difficulty``: one number per video that scales its confusers, overlays and compression;
- ``writing``: encoding, ``manifest.csv``, ``generator.json``, ``generate`` and ``ensure``;
- ``demo``: the demo's dataset; ``__main__``: the command line (``python -m videogen``).
"""
