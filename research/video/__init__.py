"""Video in: PyAV decoding, the frame sampling strategies, and the keyframe decode plan.

What decides which pixels the CNN sees lives here (``decode``), apart from what is done with
them (``research.features``), so a new container, codec or sampling strategy has one home.
"""
