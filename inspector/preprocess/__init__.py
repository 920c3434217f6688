"""Preprocessing: frame → model input tensor (step 3 of the flow).

``cpu.py`` uses OpenCV/numpy; ``cuda.py`` (imported only when configured) does the same
work in one fused NVRTC kernel. Both return a ``Geometry`` that maps model coordinates
back to frame pixels, and both must agree within 1/255.
"""
