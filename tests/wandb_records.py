"""Reading an offline W&B run back: the records of its ``run-<id>.wandb`` file.

The file is W&B's own log: a 7-byte header (``:W&B``, magic 0xBEE1, version 0), then 32 KiB blocks
of records framed as in LevelDB's log format (CRC32C, 2-byte length, type: full / first / middle /
last), each payload a serialized ``wandb.proto.wandb_internal_pb2.Record``.
"""

import json
import struct
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
RECORD_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a W&B run file"
    position, pending = 7, b""
    while position + RECORD_HEADER <= len(data):
        left_in_block = BLOCK - position % BLOCK
        if left_in_block < RECORD_HEADER:  # the block's tail is padding
            position += left_in_block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        chunk = data[position + RECORD_HEADER : position + RECORD_HEADER + length]
        position += RECORD_HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
        else:  # zero padding at the end of a file being written
            break


def read_run(run_dir: Path) -> dict:
    """{'run': RunRecord, 'config': {key: value}, 'history': [{key: value}], 'summary': {...}}."""
    (path,) = run_dir.glob("run-*.wandb")
    result = {"run": None, "config": {}, "history": [], "summary": {}}
    for payload in _payloads(path.read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            result["run"] = record.run
            result["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            result["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            result["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
        elif kind == "summary":
            result["summary"].update({i.key: json.loads(i.value_json) for i in record.summary.update})
    return result
