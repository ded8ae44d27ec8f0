"""Reading and writing IDX files, the format of MNIST (http://yann.lecun.com/exdb/mnist/).

Header: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions, then each
dimension as a big-endian int32; the values follow in row-major order.
"""

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from capsnet.errors import IDXFormatError

UBYTE = 0x08


def read_bytes(path: Path) -> bytearray:
    """The whole file, in one writable buffer (so arrays parsed from it can be shared with torch)."""
    with open(path, "rb") as file:
        data = bytearray(os.fstat(file.fileno()).st_size)
        file.readinto(data)
    return data


def read_idx(path: Path) -> np.ndarray:
    return parse_idx(read_bytes(path), path)


def parse_idx(data: bytearray, path: Path) -> np.ndarray:
    """The array in an IDX file's bytes, sharing their memory (no copy); ``path`` names it in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != UBYTE:
        raise IDXFormatError(f"{path}: not an unsigned-byte IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}i", data[4:header])
    if len(data) != header + int(np.prod(shape)):
        raise IDXFormatError(f"{path}: {len(data)} bytes, but its header promises shape {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write atomically: a reader never sees a half-written file. The temporary file has a name of its
    own (two writers never share one) in the same folder, and is gone whatever happens."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, UBYTE, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(header + array.tobytes())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
