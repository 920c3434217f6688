"""The station's OPC UA information model, laid out after OPC 40100-1 (Machine Vision).

Where it sits: built once by the OPC UA server (``plant/opcua.py``) in its own asyncio
loop; the sink's results and the station's state are written into it there. The
mapping of every node to the specification is ``docs/opcua.md``.

    Objects/VisionSystem                      (40100-1 VisionSystemType instance)
      Line, Station                            who this is
      SystemState, SystemStateDescription      SEMI E10 state (SystemStateDataType)
      VisionStateMachine/CurrentState, StateCode, ErrorCode
      RecipeManagement/ActiveRecipeId, ActiveRecipeName
      ConfigurationManagement/ActiveConfiguration/InternalId (config hash), ModelHash
      ResultManagement/LastResult              (InspectionResultDataType, one per part)
      ResultManagement/Results/LastResult…     the same fields as plain variables
      Counters/PartsTotal, PartsOk, PartsNg, PartsByReason/<reason>

Every variable is read-only for clients (AccessLevel CurrentRead); only the server's
own session writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.common.node import Node
from asyncua.common.structures104 import new_struct, new_struct_field
from asyncua.server.server import Server

from inspector.types import Reason

#: STATE (docs/plc.md) → 40100-1 VisionStateMachine top-level state.
VISION_STATE = {0: "Preoperational", 1: "Operational", 2: "Operational", 3: "Error", 4: "Halted"}
#: STATE → SEMI E10 SystemStateDataType: PRD 1, SBY 2, ENG 3, SDT 4, UDT 5, NST 6.
SEMI_E10 = {0: (6, "NST"), 1: (1, "PRD"), 2: (1, "PRD"), 3: (5, "UDT"), 4: (6, "NST")}
#: ResultState values we publish (40100-1 leaves positive values to the system).
RESULT_STATE_OK, RESULT_STATE_NG = 1, 2

V = ua.VariantType
RESULT_FIELDS = (
    ("ResultId", V.String),
    ("PartId", V.Int64),
    ("TriggerSeq", V.Int64),
    ("InternalRecipeId", V.Int32),
    ("Verdict", V.String),
    ("Reason", V.String),
    ("ResultState", V.Int32),
    ("CycleTimeMs", V.Double),
    ("CreationTime", V.DateTime),
    ("InternalConfigurationId", V.String),
)


@dataclass
class StationNodes:
    """Handles of the nodes the server writes, by name."""

    idx: int
    root: Node
    result_type: Any = None  # the generated Python class of InspectionResultDataType
    variables: dict[str, tuple[Node, ua.VariantType]] = field(default_factory=dict)


async def _var(
    nodes: StationNodes, parent: Node, name: str, value: Any, vtype: ua.VariantType
) -> Node:
    node = await parent.add_variable(nodes.idx, name, ua.Variant(value, vtype))
    nodes.variables[f"{(await parent.read_browse_name()).Name}/{name}"] = (node, vtype)
    return node


async def build_model(
    server: Server,
    idx: int,
    *,
    display: str,
    config_hash: str,
    model_hash: str,
    recipes: dict[int, str],
) -> StationNodes:
    """Create the station's nodes under Objects; returns what the server updates."""
    root = await server.nodes.objects.add_object(idx, "VisionSystem")
    nodes = StationNodes(idx, root)
    line, _, station = display.partition("/")
    await root.add_variable(idx, "Line", ua.Variant(line, V.String))
    await root.add_variable(idx, "Station", ua.Variant(station, V.String))
    dtype, _ = await new_struct(
        server, idx, "InspectionResultDataType", [new_struct_field(n, t) for n, t in RESULT_FIELDS]
    )
    await server.load_data_type_definitions()
    nodes.result_type = getattr(ua, "InspectionResultDataType")  # noqa: B009 (made at run time)
    await _var(nodes, root, "SystemState", 6, V.Int32)
    await _var(nodes, root, "SystemStateDescription", "NST", V.String)
    vsm = await root.add_object(idx, "VisionStateMachine")
    await _var(nodes, vsm, "CurrentState", ua.LocalizedText("Preoperational"), V.LocalizedText)
    await _var(nodes, vsm, "StateCode", 0, V.UInt16)
    await _var(nodes, vsm, "ErrorCode", 0, V.UInt32)
    rm = await root.add_object(idx, "RecipeManagement")
    await _var(nodes, rm, "ActiveRecipeId", 0, V.Int32)
    await _var(nodes, rm, "ActiveRecipeName", "", V.String)
    recipes_folder = await rm.add_folder(idx, "Recipes")
    for rid, name in sorted(recipes.items()):
        recipe = await recipes_folder.add_object(idx, f"Recipe{rid}")
        await recipe.add_variable(idx, "InternalId", ua.Variant(rid, V.Int32))
        await recipe.add_variable(idx, "Name", ua.Variant(name, V.String))
    cm = await root.add_object(idx, "ConfigurationManagement")
    active = await cm.add_object(idx, "ActiveConfiguration")
    await active.add_variable(idx, "InternalId", ua.Variant(config_hash, V.String))
    await active.add_variable(idx, "ModelHash", ua.Variant(model_hash, V.String))
    res = await root.add_object(idx, "ResultManagement")
    last = await res.add_variable(idx, "LastResult", ua.Variant(None), datatype=dtype.nodeid)
    nodes.variables["ResultManagement/LastResult"] = (last, V.ExtensionObject)
    results = await res.add_folder(idx, "Results")
    for name, vtype in RESULT_FIELDS:
        await _var(nodes, results, name, _zero(vtype), vtype)
    counters = await root.add_object(idx, "Counters")
    for name in ("PartsTotal", "PartsOk", "PartsNg"):
        await _var(nodes, counters, name, 0, V.UInt64)
    by_reason = await counters.add_folder(idx, "PartsByReason")
    for reason in Reason:
        await _var(nodes, by_reason, reason.value, 0, V.UInt64)
    return nodes


def _zero(vtype: ua.VariantType) -> Any:
    if vtype is V.String:
        return ""
    if vtype is V.Double:
        return 0.0
    if vtype is V.DateTime:
        return datetime(1970, 1, 1)
    return 0
