"""The PLC link: trigger in (step 1 of the flow), verdict out (the last step).

* ``protocol.py``: register map, encoding, CHECK, sequence arithmetic (pure);
* ``handshake.py``: the vision side of the handshake as a state machine (pure);
* ``io.py``: Modbus TCP, daemon as client or as server (pymodbus, asyncio);
* ``link.py``: ``PlcLink``, the trigger source and result sink the application wires;
* the PLC simulator (a demo and test piece) lives in ``inspector/sim/``.

docs/plc.md has the map, the timing and what the PLC program must do.
"""
