"""The gaming class: tile-engine levels and casual games.

- ``levels``: ``topdown``, ``side_scroller``, ``arena`` (tile maps with a HUD; the first catalogue);
- ``casual``: ``board_game`` (reversi, mines, tiles, mahjongg, lines of balls in a desktop window),
  ``card_game`` (solitaire on felt), ``bubble_shooter``.
"""
