"""The flat_content class: slides, code, spreadsheets, desktops, terminals, documents, test cards, diagrams.

- ``office``: ``slides``, ``code_scroll``, ``spreadsheet``, ``desktop`` (the first catalogue);
- ``screens``: ``terminal``, ``document``, ``test_card``, ``diagram`` (modelled on real screen recordings).
"""
