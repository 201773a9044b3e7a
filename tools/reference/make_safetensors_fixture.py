#!/usr/bin/env python3
"""Writes tests/fixtures/python_written.safetensors with the official python `safetensors` library.

tests/test_safetensors.cpp reads it back with vislang's reader and checks every value below, and
checks that vislang's writer puts the same tensors at the same byte offsets (same sort order:
descending dtype alignment, then name). Keep it tiny (< 2 KB); re-run only if the values change:

    python tools/reference/make_safetensors_fixture.py
"""
import os

import torch
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "python_written.safetensors")


def main():
    tensors = {
        # (2, 3) f32: -1.0, -0.5, ..., 1.5
        "layer.0.weight": (torch.arange(6, dtype=torch.float32) * 0.5 - 1.0).reshape(2, 3),
        # f16: max finite, smallest subnormal (2^-24), a value that is not exact in f16 (rounded)
        "half": torch.tensor([1.0, -2.5, 65504.0, 2.0**-24, 0.1], dtype=torch.float16),
        "bf16": torch.tensor([1.0, -0.5, 3.140625, 1e30], dtype=torch.bfloat16),
        "f64": torch.tensor([3.141592653589793, -2.718281828459045], dtype=torch.float64),
        "i64": torch.tensor([-3, 0, 2**40], dtype=torch.int64),
        "i32": torch.tensor([[-7], [7]], dtype=torch.int32),
        "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
        "mask": torch.tensor([True, False, True]),  # BOOL, read as u8 0/1
        "scalar": torch.tensor(42.0),  # 0-d
        "empty": torch.zeros(0, 3),  # zero elements
    }
    # One metadata key only: the library keeps metadata in a hash map, so with several keys the
    # header order would depend on the hash and the bytes would not be reproducible.
    save_file(tensors, OUT, metadata={"generator": "make_safetensors_fixture.py"})
    print(f"wrote {os.path.normpath(OUT)} ({os.path.getsize(OUT)} bytes)")


if __name__ == "__main__":
    main()
