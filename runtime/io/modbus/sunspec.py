"""SunSpec discovery: find the "SunS" marker, walk the model chain, locate points by model and name.

A SunSpec device starts its map with the two registers "SunS" (0x5375 0x6E53), usually at 40000, on
some devices at 0 or 50000. Then come models, each an ID register, a length register L and L
registers of points; the chain ends with ID 0xFFFF. Fixed addresses differ between devices, so
points are always located through the chain, never hard-coded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ...errors import PlcrunError
from .codec import decode_string
from .model import SunSpecRef
from .sunspec_models import MODELS, SunSpecPoint, point_offset
from .transport import DeviceException

SUNS_MARKER = (0x5375, 0x6E53)
END_OF_CHAIN = 0xFFFF
MAX_MODELS = 64

ReadHolding = Callable[[int, int], Sequence[int]]


class SunSpecError(PlcrunError):
    """The device's SunSpec map is missing, broken or lacks a point that was asked for."""


@dataclass(frozen=True, slots=True)
class ModelInstance:
    model_id: int
    address: int  # of the model ID register
    length: int  # L: registers after the length register


@dataclass(frozen=True, slots=True)
class ResolvedPoint:
    address: int
    definition: SunSpecPoint
    sf_address: int | None


@dataclass(frozen=True)
class SunSpecMap:
    base: int
    models: tuple[ModelInstance, ...]
    common: dict[str, str] = field(default_factory=dict)  # manufacturer, model, serial, version

    def find(self, model_id: int) -> ModelInstance | None:
        return next((m for m in self.models if m.model_id == model_id), None)

    def summary(self) -> str:
        ids = ", ".join(str(m.model_id) for m in self.models)
        who = " ".join(v for v in (self.common.get("Mn"), self.common.get("Md")) if v)
        return f"SunSpec at {self.base}: models {ids}" + (f" ({who})" if who else "")

    def resolve(self, ref: SunSpecRef, sf_name: str | None = None) -> ResolvedPoint:
        """Address of ``ref`` (and of its scale factor) in this device."""
        instance = self.find(ref.model)
        if instance is None:
            present = ", ".join(str(m.model_id) for m in self.models) or "none"
            raise SunSpecError(
                f"SunSpec model {ref.model} not found on the device (models present: {present})"
            )
        model = MODELS[ref.model]
        definition = model.points[ref.point]
        offset = point_offset(ref.model, instance.length, definition)
        if offset + definition.registers > instance.length + 2:
            raise SunSpecError(
                f"point {ref} lies beyond the end of model {ref.model} "
                f"(length {instance.length} on this device)"
            )
        sf_address = None
        if sf_name is not None:
            sf_definition = model.points[sf_name]
            sf_address = instance.address + point_offset(ref.model, instance.length, sf_definition)
        return ResolvedPoint(instance.address + offset, definition, sf_address)


def discover(read: ReadHolding, bases: Sequence[int]) -> SunSpecMap:
    """Find the marker at one of ``bases`` and walk the chain. Communication errors propagate."""
    tried = []
    for base in bases:
        try:
            marker = tuple(read(base, 2))
        except DeviceException as exc:
            tried.append(f"{base} (exception {exc.code:02d})")
            continue
        if marker != SUNS_MARKER:
            tried.append(f"{base} (found {marker[0]:#06x} {marker[1]:#06x})")
            continue
        return _walk(read, base)
    raise SunSpecError("no SunSpec marker 'SunS' at " + ", ".join(tried))


def _walk(read: ReadHolding, base: int) -> SunSpecMap:
    models: list[ModelInstance] = []
    address = base + 2
    while len(models) < MAX_MODELS and address + 2 <= 65536:
        try:
            model_id, length = read(address, 2)
        except DeviceException:
            break  # some devices end the map without the 0xFFFF marker
        if model_id == END_OF_CHAIN:
            break
        models.append(ModelInstance(model_id, address, length))
        address += 2 + length
    else:
        if len(models) >= MAX_MODELS:
            raise SunSpecError(f"SunSpec chain at {base} has more than {MAX_MODELS} models: broken map?")
    common: dict[str, str] = {}
    first = models[0] if models else None
    if first is not None and first.model_id == 1 and first.length >= 65:
        try:
            words = list(read(first.address + 2, 64))
            for name in ("Mn", "Md", "Opt", "Vr", "SN"):
                point = MODELS[1].points[name]
                start = point.offset - 2
                common[name] = decode_string(words[start : start + point.registers])
        except DeviceException:
            pass
    return SunSpecMap(base, tuple(models), common)
