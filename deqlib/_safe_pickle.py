"""A pickle reader that can only build what a likelihood bank holds.

Python's :mod:`pickle` runs whatever the file asks for; even a restricted ``find_class`` leaves
two holes for a bank reader: ``numpy.core.multiarray.scalar`` turns 8 bytes of the file into an
object pointer when the dtype is ``object`` (a crafted file crashes the interpreter), and
shared references let a 250-byte file describe an exponentially large object (hashing or
printing it never ends). So this module does not use the unpickler at all. It walks the
opcodes with :func:`pickletools.genops` (a parser that builds nothing) and interprets a small
subset itself:

* containers: dict, list, tuple; atoms: str, int, bytes, float, bool, None;
* numpy scalars, rebuilt here from a validated dtype name and exactly ``itemsize`` raw bytes
  (numeric and bool dtypes only); ``_codecs.encode(str, 'latin1')`` (protocol 2 bytes);
* the memo may hand out atoms and numpy scalars again, never a container (a bank shares none);
* containers nest at most :data:`MAX_DEPTH` deep; dict keys are str, int or numpy integers,
  integers in ``[0, MAX_INT_KEY)`` only.

Integer keys are bounded because Python hashes an integer ``k`` to ``k mod (2**61 - 1)``: keys
``k * (2**61 - 1)`` all hash alike and building a dict of n of them takes n**2 / 2 comparisons
(80,000 such keys, 6 MB: 32 s). Below ``2**32`` every integer hashes to itself, so no two keys
collide. A bank's integer keys are positions in a listing (the official Waymo notebook), far below.

Every object is built from at least one opcode and none is shared, so the work is linear in
the file size. Anything else raises :class:`SafePickleError` with a short message (the
offending opcode and its position, never a dump of the data).
"""

from __future__ import annotations

import pickletools
import reprlib

import numpy as np

__all__ = ["SafePickleError", "MAX_DEPTH", "MAX_INT_KEY", "NUMPY_DTYPES", "safe_load"]

#: Deepest container nesting accepted: {id: {field: value}} is 2; numpy's tuples add 1.
MAX_DEPTH = 4
#: Integer dict keys must lie in ``[0, MAX_INT_KEY)``: there an integer's hash is itself, so no
#: crafted keys can share one (which would make building the dict quadratic).
MAX_INT_KEY = 2**32
#: Numpy dtype names a bank's numbers can have (what ``np.dtype(name)`` is called with in a pickle).
NUMPY_DTYPES = frozenset({"i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "b1"})

_SCALAR = ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar")
_DTYPE = ("numpy", "dtype")
_ENCODE = ("_codecs", "encode")
_short = reprlib.Repr()
_short.maxstring, _short.maxother, _short.maxlong = 40, 40, 40


class SafePickleError(ValueError):
    """What the file asked for cannot be in a bank; nothing was built or run."""


class _Global:
    """A permitted callable, by name only (never imported)."""

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name


class _DType:
    """A numpy dtype under construction (``np.dtype(name)`` then ``BUILD`` with its byte order)."""

    def __init__(self, name: str):
        self.name, self.byteorder, self._resolved = name, "<", None

    def resolve(self) -> np.dtype:
        if self._resolved is None:
            self._resolved = np.dtype(self.name).newbyteorder(self.byteorder if self.byteorder in "<>" else "=")
        return self._resolved

    def scalar(self, raw: bytes) -> np.generic:
        dtype = self.resolve()
        if len(raw) != dtype.itemsize:
            raise SafePickleError(f"numpy scalar of dtype {dtype.str} needs {dtype.itemsize} bytes, got {len(raw)}")
        if dtype.kind in "iu":  # the common case (bank counts), without an array round trip
            order = "big" if dtype.byteorder == ">" else "little"
            return dtype.type(int.from_bytes(raw, order, signed=dtype.kind == "i"))
        return np.frombuffer(raw, dtype=dtype)[0].astype(dtype.newbyteorder("="))


_CONTAINERS = (dict, list, tuple)
_PUTS = frozenset({"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"})
_GETS = frozenset({"GET", "BINGET", "LONG_BINGET"})
_VALUES = frozenset({"BINUNICODE", "SHORT_BINUNICODE", "BINUNICODE8", "UNICODE", "BINBYTES", "SHORT_BINBYTES",
                     "BINBYTES8", "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT",
                     "BINFLOAT", "STRING", "BINSTRING", "SHORT_BINSTRING"})


def _describe(value) -> str:
    if isinstance(value, _Global):
        return value.name
    if isinstance(value, _DType):
        return f"numpy.dtype({value.name!r})"
    return type(value).__name__


def safe_load(data: bytes, allow_numpy_scalars: bool = True):
    """Interpret ``data`` as a pickle of plain containers, atoms and numpy scalars.

    Parameters
    ----------
    data : bytes
        The whole file.
    allow_numpy_scalars : bool, default=True
        Rebuild numpy scalars (``np.int64`` and friends) from their raw bytes; ``False`` refuses them.

    Returns
    -------
    object
        The unpickled dict, list, tuple or atom.

    Raises
    ------
    SafePickleError
        An opcode, global or structure a bank cannot have, or a malformed pickle.
    """
    stack: list = []
    marks: list[int] = []
    memo: dict = {}
    depth: dict[int, int] = {}  # id(container) -> nesting depth (1 = holds only atoms)
    alive: list = []  # every container built, so that no id() in ``depth`` is ever reused
    position = 0

    def fail(reason: str):
        raise SafePickleError(f"{reason} (at byte {position})")

    def depth_of(value) -> int:
        return depth.get(id(value), 0) if isinstance(value, _CONTAINERS) else 0

    def adopt(container, children) -> None:
        # Depth bound: a container is one deeper than its deepest child.
        alive.append(container)
        level = 1 + max((depth_of(c) for c in children), default=0)
        if level > MAX_DEPTH:
            fail(f"containers nested deeper than {MAX_DEPTH} levels; a bank is {{sample_id: {{field: int}}}}")
        depth[id(container)] = max(depth.get(id(container), 1), level)

    def pop_mark() -> list:
        if not marks:
            fail("malformed pickle: no MARK before this opcode")
        start = marks.pop()
        items = stack[start:]
        del stack[start:]
        return items

    def pop(n: int = 1) -> list:
        if len(stack) - (marks[-1] if marks else 0) < n:
            fail("malformed pickle: stack underflow")
        items = stack[len(stack) - n:]
        del stack[len(stack) - n:]
        return items

    def check_key(key) -> None:
        if not isinstance(key, (str, int, np.integer)) or isinstance(key, (bool, np.bool_)):
            fail(f"a dict key of type {_describe(key)}; bank keys are strings (or integers)")
        if not isinstance(key, str) and not 0 <= int(key) < MAX_INT_KEY:
            fail(f"integer dict key {_short.repr(int(key))} outside [0, 2**32): a bank's integer keys are positions "
                 "in a file listing; such keys can be crafted to share one hash (quadratic loading)")

    def set_items(target, pairs) -> None:
        if not isinstance(target, dict):
            fail(f"SETITEM(S) on a {_describe(target)}")
        if len(pairs) % 2:
            fail("malformed pickle: odd number of items for SETITEMS")
        keys, values = pairs[0::2], pairs[1::2]
        for key in keys:
            check_key(key)
        adopt(target, values)
        target.update(zip(keys, values))

    def append(target, items) -> None:
        if not isinstance(target, list):
            fail(f"APPEND(S) on a {_describe(target)}")
        adopt(target, items)
        target.extend(items)

    def make_tuple(items) -> tuple:
        value = tuple(items)
        if value:
            adopt(value, items)
        return value

    def find_global(module: str, name: str) -> _Global:
        where = (module, name)
        if where in _SCALAR or where == _DTYPE:
            if not allow_numpy_scalars:
                fail(f"refused numpy global {module}.{name} (pass allow_numpy_scalars=True to read numpy integers)")
            return _Global("scalar" if where in _SCALAR else "dtype", f"{module}.{name}")
        if where == _ENCODE:
            return _Global("encode", f"{module}.{name}")
        fail(f"refused to load {module}.{name}: a bank holds only dicts, strings and numbers")

    def reduce(func, args):
        if not isinstance(func, _Global) or not isinstance(args, tuple):
            fail(f"REDUCE of {_describe(func)}: only numpy scalars can be rebuilt")
        if func.kind == "dtype":
            if not (1 <= len(args) <= 3 and isinstance(args[0], str) and args[0] in NUMPY_DTYPES):
                fail(f"numpy.dtype{_short.repr(args)}: only numeric dtypes {sorted(NUMPY_DTYPES)} are allowed")
            return _DType(args[0])
        if func.kind == "scalar":
            if len(args) != 2 or not isinstance(args[0], _DType) or not isinstance(args[1], bytes):
                fail("numpy scalar(...) needs a numeric dtype and its raw bytes")
            try:
                return args[0].scalar(args[1])
            except SafePickleError as exc:
                fail(str(exc))
        if func.kind == "encode":
            if len(args) != 2 or not isinstance(args[0], str) or args[1] != "latin1":
                fail("_codecs.encode is accepted only as encode(<str>, 'latin1') (protocol-2 bytes)")
            try:
                return args[0].encode("latin1")
            except UnicodeEncodeError:
                fail("_codecs.encode of a string that is not latin-1")
        fail(f"REDUCE of {func.name}")

    def build(target, state) -> None:
        # numpy pickles a dtype's byte order as state (3, '<', None, None, None, -1, -1, 0)
        if not isinstance(target, _DType) or not isinstance(state, tuple) or len(state) < 2 \
                or state[1] not in ("<", ">", "|", "="):
            fail(f"BUILD on {_describe(target)}: only numpy dtypes take a state")
        target.byteorder, target._resolved = state[1], None

    try:
        for opcode, arg, position in pickletools.genops(data):
            name = opcode.name
            # the frequent opcodes of a bank first (memo, strings and numbers, numpy scalars)
            if name in _PUTS:
                if not stack or (marks and marks[-1] == len(stack)):
                    fail("malformed pickle: memoizing an empty stack")
                memo[len(memo) if name == "MEMOIZE" else arg] = stack[-1]
                continue
            if name in _VALUES:
                stack.append(arg)  # genops already decoded the value (protocol 0's INT 01 is True)
                continue
            if name in _GETS:
                if arg not in memo:
                    fail(f"malformed pickle: memo entry {arg} was never stored")
                value = memo[arg]
                if isinstance(value, (dict, list)) or (isinstance(value, tuple) and depth_of(value) > 1):
                    fail("a shared reference to a container: a bank never shares one, "
                         "and shared references can describe exponentially large objects")
                stack.append(value)
                continue
            if name in ("PROTO", "FRAME"):
                continue
            if name == "STOP":
                if len(stack) != 1 or marks:
                    fail("malformed pickle: STOP with a stack of size != 1")
                result = stack[0]
                if isinstance(result, (_Global, _DType)):
                    fail(f"the pickle's value is {_describe(result)}")
                return result
            if name == "MARK":
                marks.append(len(stack))
            elif name == "EMPTY_DICT":
                stack.append({})
                depth[id(stack[-1])] = 1
                alive.append(stack[-1])
            elif name == "DICT":
                value: dict = {}
                depth[id(value)] = 1
                set_items(value, pop_mark())
                stack.append(value)
            elif name == "EMPTY_LIST":
                stack.append([])
                depth[id(stack[-1])] = 1
                alive.append(stack[-1])
            elif name == "LIST":
                value = []
                depth[id(value)] = 1
                append(value, pop_mark())
                stack.append(value)
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "TUPLE":
                stack.append(make_tuple(pop_mark()))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                stack.append(make_tuple(pop(int(name[-1]))))
            elif name == "SETITEM":
                key, value = pop(2)
                if not stack:
                    fail("malformed pickle: SETITEM without a dict")
                set_items(stack[-1], [key, value])
            elif name == "SETITEMS":
                items = pop_mark()
                if not stack:
                    fail("malformed pickle: SETITEMS without a dict")
                set_items(stack[-1], items)
            elif name == "APPEND":
                (item,) = pop(1)
                if not stack:
                    fail("malformed pickle: APPEND without a list")
                append(stack[-1], [item])
            elif name == "APPENDS":
                items = pop_mark()
                if not stack:
                    fail("malformed pickle: APPENDS without a list")
                append(stack[-1], items)
            elif name == "NONE":
                stack.append(None)
            elif name in ("NEWTRUE", "NEWFALSE"):
                stack.append(name == "NEWTRUE")
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attribute = arg.partition(" ")
                else:
                    module, attribute = pop(2)
                    if not isinstance(module, str) or not isinstance(attribute, str):
                        fail("malformed pickle: STACK_GLOBAL needs two strings")
                stack.append(find_global(module, attribute))
            elif name == "REDUCE":
                func, args = pop(2)
                stack.append(reduce(func, args))
            elif name == "BUILD":
                target, state = pop(2)
                build(target, state)
                stack.append(target)
            elif name == "POP":
                pop(1)
            elif name == "POP_MARK":
                pop_mark()
            else:
                fail(f"opcode {name} is not part of a bank (only dicts, lists, tuples, strings and numbers)")
    except SafePickleError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError, MemoryError) as exc:
        # pickletools raises ValueError on truncated or unknown opcodes
        raise SafePickleError(f"not a readable pickle ({type(exc).__name__}: {_short.repr(str(exc))})") from None
    raise SafePickleError("not a readable pickle (truncated: no STOP opcode)")
