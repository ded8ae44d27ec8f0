"""The allocator policy of capsnet.ops.process (this project runs on glibc Linux, where mallopt exists)."""

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import pytest

from capsnet.ops.process import set_mmap_threshold


def _set_in_fresh_process(threshold, env=None) -> str:
    code = f"from capsnet.ops.process import set_mmap_threshold; print(set_mmap_threshold({threshold!r}))"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def test_null_keeps_the_default():
    assert set_mmap_threshold(None) is False


def test_threshold_is_set():
    assert _set_in_fresh_process(2**20) == "True"


def test_glibc_environment_variable_wins():
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "4194304"}
    assert _set_in_fresh_process(2**20, env=env) == "False"


def _huge_pages_in_fresh_process(enabled, env) -> str:
    code = (
        "import os, sys; from capsnet.ops.process import enable_huge_pages; "
        f"print(enable_huge_pages({enabled!r}), os.environ.get('THP_MEM_ALLOC_ENABLE'), "
        "'torch' in sys.modules)"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout.strip()


def test_huge_pages_are_asked_for_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    assert _huge_pages_in_fresh_process(True, env) == "True 1 False"
    assert _huge_pages_in_fresh_process(False, env) == "False None False"
    assert _huge_pages_in_fresh_process(True, {**env, "THP_MEM_ALLOC_ENABLE": "0"}) == "False 0 False"


def _triton_in_fresh_process(enabled: bool, compile: bool = True) -> list[str]:
    """skip_triton_on_cpu's answer, then whether libtriton is mapped after Lightning loads, whether a
    CPU torch.compile still works ("None": not tried), and what the process logged."""
    code = (
        "import sys, torch; from capsnet.ops.process import skip_triton_on_cpu; "
        f"print(skip_triton_on_cpu({enabled!r})); import lightning; "
        "print('libtriton' in open('/proc/self/maps').read()); "
        "f = torch.compile(lambda x: (2 * x).sin().sum()); x = torch.arange(4.0); "
        f"print(torch.allclose(f(x), (2 * x).sin().sum()) if {compile!r} else None)"
    )
    command = [sys.executable, "-c", code]
    result = subprocess.run(command, capture_output=True, text=True, check=True, timeout=300)
    return [*result.stdout.split(), result.stderr]


def test_triton_is_loaded_only_with_an_accelerator():
    import torch

    if torch.accelerator.is_available():  # a GPU machine keeps Triton: torch.compile needs it there
        skipped, _, _, _ = _triton_in_fresh_process(True, compile=False)
        assert skipped == "False"
        return
    with ThreadPoolExecutor() as pool:  # the two processes at once
        with_setting, without = pool.map(partial(_triton_in_fresh_process, compile=False), (True, False))
    skipped, mapped, _, log = with_setting
    assert (skipped, mapped) == ("True", "False")
    assert "triton not found" not in log  # torch's FLOP counter warning is filtered out
    skipped, mapped, _, _ = without
    installed = importlib.util.find_spec("triton") is not None
    assert (skipped, mapped) == ("False", str(installed))  # what it saves: torchvision's import loads Triton


@pytest.mark.slow  # compiles (C++ on the CPU)
def test_cpu_compile_works_without_triton():
    skipped, _, compiled, _ = _triton_in_fresh_process(True)
    assert compiled == "True" and skipped in ("True", "False")  # skipped only where no accelerator
