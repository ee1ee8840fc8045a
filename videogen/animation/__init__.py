"""The animation class: cartoons, rendered intros, 3-D screensavers, visualisers, ray-traced worlds.

- ``cartoons``: ``cel_shapes``, ``characters``, ``cgi_balls`` (the first catalogue);
- ``screensavers``: ``gl_objects`` (lit 3-D objects), ``visualiser`` (feedback music visualisers);
- ``raytrace``: ``scene3d`` (ray-cast 3-D worlds: solids and creatures on a ground, fog, shadows).
"""
