"""Demo and test pieces, outside the production path: nothing in the daemon's core imports
this package (an import-linter contract keeps it so).

* ``plc_program.py`` + ``plc.py``: the PLC simulator (a Modbus PLC that triggers parts
  and checks every verdict); ``cli.py``: ``inspector plc-sim``;
* ``camera.py``: the synthetic line (``camera.type: sim``), reached through the camera
  registry by name; ``render.py``: how one synthetic part is drawn.

The app starts the embedded PLC simulator only in demo mode, when ``demo.plc_simulator``
is set.
"""
