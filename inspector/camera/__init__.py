"""Camera sources: where frames come from (step 2 of the flow).

``open_camera(cfg)`` returns a ``Camera`` for ``camera.type``: ``sim`` (synthetic line),
``folder`` (replay) or ``genicam`` (harvesters, imported only when used).
"""
