"""The natural_content class: camera footage over real photographs.

- ``cameras``: ``photo_pan`` and ``handheld`` (one camera over a photograph), ``scene_cuts`` (edited
  shots), ``fixed_camera`` (a tripod shot with walkers, film grain or underwater colour).
"""
