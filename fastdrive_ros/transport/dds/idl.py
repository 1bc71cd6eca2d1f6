"""Cyclone DDS IdlStruct types generated from a rosbags typestore, and converters both ways.

Each ROS message becomes a plain, key-less, final struct named as rosidl names it
(`pkg::msg::dds_::Name_`), which cyclonedds serialises as XCDR1 = the ROS 2 CDR encoding; the
parity tests check the bytes against rosbags' `serialize_cdr`. Byte-like sequences (`uint8[]`,
`byte[]`, `char[]`: image data, JPEG) travel as Python `bytes`, copied in one piece; a list of
ints would cost hundreds of milliseconds per raw image.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from rosbags.interfaces import Nodetype
from rosbags.typesys.base import normalize_fieldname
from rosbags.typesys.store import Typestore

from fastdrive_ros.transport.dds._lib import cyclonedds
from fastdrive_ros.transport.dds.names import dds_type_name

_BYTE_LIKE = {"uint8", "byte", "char"}
_NUMPY = {
    "bool": np.bool_,
    "byte": np.uint8,
    "char": np.uint8,
    "int8": np.int8,
    "uint8": np.uint8,
    "int16": np.int16,
    "uint16": np.uint16,
    "int32": np.int32,
    "uint32": np.uint32,
    "int64": np.int64,
    "uint64": np.uint64,
    "float32": np.float32,
    "float64": np.float64,
}

Converter = Callable[[Any], Any]


def _primitive(name: str) -> Any:
    """The cyclonedds annotation of a ROS primitive (ROS `char` is an unsigned byte)."""
    types = cyclonedds().idl.types
    table = {
        "bool": bool,
        "byte": types.byte,
        "char": types.uint8,
        "int8": types.int8,
        "uint8": types.uint8,
        "int16": types.int16,
        "uint16": types.uint16,
        "int32": types.int32,
        "uint32": types.uint32,
        "int64": types.int64,
        "uint64": types.uint64,
        "float32": types.float32,
        "float64": types.float64,
    }
    if name not in table:
        raise TypeError(f"ROS type {name!r} has no ROS 2 CDR mapping here (wstring, float128)")
    return table[name]


@dataclass(frozen=True)
class WireType:
    """One message type on the wire: its IdlStruct class and the two converters.

    Attributes:
        msgtype: ROS name, `pkg/msg/Name`.
        idl_class: cyclonedds IdlStruct subclass named `pkg::msg::dds_::Name_`.
        to_idl: rosbags message -> IdlStruct instance.
        from_idl: IdlStruct instance -> rosbags message.
    """

    msgtype: str
    idl_class: type
    to_idl: Converter
    from_idl: Converter


class WireTypes:
    """Generates and caches the WireType of each message type of one typestore (thread-safe).

    Nested types are generated first; a type is generated once per registry, so two topics of
    the same type share one IdlStruct class (Cyclone requires one type per type name).
    """

    def __init__(self, *, store: Typestore) -> None:
        if not isinstance(store, Typestore):
            raise TypeError(f"store must be a rosbags Typestore, got {type(store).__name__}")
        self._store = store
        self._types: dict[str, WireType] = {}
        self._lock = threading.RLock()

    @property
    def store(self) -> Typestore:
        return self._store

    def get(self, msgtype: str) -> WireType:
        """The WireType of `pkg/msg/Name`, generated on first use."""
        found = self._types.get(msgtype)
        if found is not None:
            return found
        with self._lock:
            if msgtype not in self._types:
                if msgtype not in self._store.fielddefs:
                    raise KeyError(f"message type {msgtype!r} is not in the typestore")
                self._types[msgtype] = self._build(msgtype)
            return self._types[msgtype]

    def _build(self, msgtype: str) -> WireType:
        idl = cyclonedds().idl
        names, annotations, to_fns, from_fns, byte_seqs = [], {}, [], [], {}
        for name, desc in self._store.fielddefs[msgtype][1]:
            pyname = normalize_fieldname(name)
            annotation, to_fn, from_fn = self._field(desc, f"{msgtype}.{name}")
            names.append(pyname)
            annotations[pyname] = annotation
            to_fns.append(to_fn)
            from_fns.append(from_fn)
            if _is_byte_sequence(desc):
                byte_seqs[pyname] = desc[1][1]
        typename = dds_type_name(msgtype).replace("::", ".")
        class_name = typename.rsplit(".", 1)[1]
        idl_class = idl.make_idl_struct(class_name, typename, annotations)
        _bytes_fast_path(idl_class, byte_seqs)
        msg_class = self._store.types[msgtype]
        plan = tuple(zip(names, to_fns))
        back = tuple(zip(names, from_fns))

        def to_idl(msg: Any) -> Any:
            return idl_class(*[fn(getattr(msg, n)) for n, fn in plan])

        def from_idl(sample: Any) -> Any:
            return msg_class(*[fn(getattr(sample, n)) for n, fn in back])

        return WireType(msgtype, idl_class, to_idl, from_idl)

    def _field(self, desc: Any, where: str) -> tuple[Any, Converter, Converter]:
        """(annotation, to_idl, from_idl) for one field descriptor."""
        types = cyclonedds().idl.types
        kind, arg = desc
        if kind == Nodetype.BASE:
            base, bound = arg
            if base == "string":
                return (types.bounded_str[bound] if bound else str), _same, _same
            if base == "byte":
                # rosbags holds a scalar `byte` as a signed int (ROS 1 heritage); one byte on the
                # wire either way, so keep rosbags' values.
                return types.int8, _same, _same
            return _primitive(base), _same, _same
        if kind == Nodetype.NAME:
            sub = self.get(arg)
            return sub.idl_class, sub.to_idl, sub.from_idl
        (inner_kind, inner), count = arg
        is_array = kind == Nodetype.ARRAY
        if inner_kind == Nodetype.NAME:
            sub = self.get(inner)
            annotation = _container(sub.idl_class, count, is_array)
            return annotation, _each(sub.to_idl, where, count, is_array), _each(sub.from_idl)
        base, bound = inner
        if base in _BYTE_LIKE:
            # The annotation keeps the IDL type (sequence<uint8>) for Cyclone's type information;
            # _bytes_fast_path then swaps in a serialiser that takes `bytes` whole.
            annotation = _container(_primitive(base), count, is_array)
            return annotation, _to_bytes(where, count, is_array), _from_bytes(_NUMPY[base])
        if base == "string":
            annotation = _container(types.bounded_str[bound] if bound else str, count, is_array)
            return annotation, _to_list(where, count, is_array), list
        annotation = _container(_primitive(base), count, is_array)
        return annotation, _to_list(where, count, is_array), _from_list(_NUMPY[base])


def _container(item: Any, count: int, is_array: bool) -> Any:
    """`T[count]` (array), `sequence<T, count>` (bounded) or `sequence<T>` as a cyclonedds type."""
    types = cyclonedds().idl.types
    if is_array:
        return types.array[item, count]
    return types.sequence[item, count] if count else types.sequence[item]


def _is_byte_sequence(desc: Any) -> bool:
    kind, arg = desc
    if kind != Nodetype.SEQUENCE:
        return False
    (inner_kind, inner), _ = arg
    return inner_kind == Nodetype.BASE and inner[0] in _BYTE_LIKE


def _bytes_fast_path(idl_class: type, byte_seqs: dict[str, int]) -> None:
    """Serialise `sequence<uint8>` fields from/to `bytes` in one copy (same CDR bytes).

    cyclonedds maps sequence<uint8> to a machine that packs a Python list element by element
    (hundreds of ms for a raw image); its `bytes` machine writes the same encoding (uint32 length,
    then the bytes) but cannot describe itself as an XTypes type. So the class is annotated with
    the real IDL type and its field machines are swapped here, after cyclonedds built them.
    """
    if not byte_seqs:
        return
    from cyclonedds.idl import _machinery as machinery

    info = idl_class.__idl__
    info.populate()
    for machine in (info.v1_machine, info.v2_machine):
        members = getattr(machine, "members_machines", None)
        for name, bound in byte_seqs.items():
            current = None if members is None else members.get(name)
            if not isinstance(current, machinery.PlainCdrV2SequenceOfPrimitiveMachine):
                raise RuntimeError(
                    f"unexpected cyclonedds internals for {idl_class.__name__}.{name}: "
                    f"{type(current).__name__}; this module is written for cyclonedds 11.0"
                )
            members[name] = machinery.BytesMachine(bound=bound or None)


def _same(value: Any) -> Any:
    return value


def _check_len(where: str, size: int, count: int, is_array: bool) -> None:
    if is_array and size != count:
        raise ValueError(f"{where}: fixed array needs {count} elements, got {size}")
    if not is_array and count and size > count:
        raise ValueError(f"{where}: bounded sequence takes at most {count} elements, got {size}")


def _each(fn: Converter, where: str = "", count: int = 0, is_array: bool = False) -> Converter:
    def convert(values: Any) -> list:
        if where:
            _check_len(where, len(values), count, is_array)
        return [fn(v) for v in values]

    return convert


def _to_list(where: str, count: int, is_array: bool) -> Converter:
    def convert(values: Any) -> list:
        out = values.tolist() if isinstance(values, np.ndarray) else list(values)
        _check_len(where, len(out), count, is_array)
        return out

    return convert


def _from_list(dtype: Any) -> Converter:
    def convert(values: list) -> np.ndarray:
        return np.array(values, dtype=dtype)

    return convert


def _to_bytes(where: str, count: int, is_array: bool) -> Converter:
    """uint8-like data -> bytes, without a per-element Python loop."""

    def convert(values: Any) -> bytes:
        if isinstance(values, np.ndarray):
            if values.dtype.itemsize != 1:
                raise TypeError(f"{where}: expected a uint8 array, got dtype {values.dtype}")
            out = values.tobytes()
        else:
            out = bytes(values)
        _check_len(where, len(out), count, is_array)
        return out

    return convert


def _from_bytes(dtype: Any) -> Converter:
    def convert(values: bytes) -> np.ndarray:
        return np.frombuffer(values, dtype=dtype)

    return convert
