"""This repository's own studies: the results page and the measurements behind it.

Not part of the library a lab uses: RESULTS.md (``results``), the real-footage and backbone
studies on benchmarks/real (``real_footage``, ``backbones``) and the drawn set's difficulty bins
(``difficulty``). ``research`` never imports this package (a test checks it), as it never imports
``videogen``.
"""
