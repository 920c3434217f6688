"""Verdict invariants: only a consistent OK maps to the PLC's OK."""

from __future__ import annotations

import pytest

from inspector.types import PLC_VERDICT_OF_REASON, PlcVerdict, Reason, Verdict, ng


def test_inconsistent_verdicts_cannot_be_built() -> None:
    with pytest.raises(ValueError):
        Verdict(ok=True, reason=Reason.DEFECT)
    with pytest.raises(ValueError):
        Verdict(ok=False, reason=Reason.OK)
    with pytest.raises(ValueError):
        ng(Reason.OK)


def test_only_ok_reason_maps_to_plc_ok() -> None:
    oks = [r for r, v in PLC_VERDICT_OF_REASON.items() if v is PlcVerdict.OK]
    assert oks == [Reason.OK]
    assert set(PLC_VERDICT_OF_REASON) == set(Reason)
    assert ng(Reason.TIMEOUT).plc_verdict is PlcVerdict.NG_TIMEOUT
    assert ng(Reason.NO_IMAGE).plc_verdict is PlcVerdict.NG_NO_IMAGE
    assert ng(Reason.ERROR).plc_verdict is PlcVerdict.NG_ERROR
