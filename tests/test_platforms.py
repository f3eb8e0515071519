"""The platform record: what it holds here, and when two records count as the same platform."""

import json

import pytest
import torch
from conftest import REPO

from charlm import cpu, platforms
from charlm.__main__ import main as charlm_main

HERE = platforms.record(torch.device("cpu"), "fp32", threads=2)


def test_record_holds_every_bit_deciding_key_with_this_cpus_values():
    assert set(platforms.BIT_KEYS["cpu"]) <= set(HERE)
    assert set(platforms.BIT_KEYS["cuda"]) <= set(HERE)
    info = cpu.cpuinfo()
    assert HERE["cpu_family"] == info.get("cpu family")
    assert HERE["cpu_model_number"] == info.get("model")
    assert HERE["cpu_stepping"] == info.get("stepping")
    assert HERE["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert HERE["cpu_bf16"] == cpu.bf16_capability()
    assert HERE["threads"] == 2 and HERE["precision"] == "fp32"
    assert HERE["mkl"] is None or HERE["mkl"][0].isdigit()
    assert HERE["onednn"] is None or HERE["onednn"].startswith("v")
    isa = HERE["cpu_isa"].split(",") if HERE["cpu_isa"] else []
    assert all(flag in platforms.ISA_FLAGS for flag in isa)
    assert ("avx512f" in isa) == ("avx512f" in info.get("flags", "").split())
    assert HERE["cuda_capability"] is None and HERE["device_name"] == "cpu"


def test_the_same_record_is_the_same_platform():
    match = platforms.compare(HERE, dict(HERE))
    assert match.same and match.describe() == ""


def test_a_changed_bit_deciding_key_differs_and_is_named():
    here_isa = HERE["cpu_capability"]
    other_isa = "AVX2" if here_isa == "AVX512" else "AVX512"  # whichever this CPU is not
    other = dict(HERE, cpu_capability=other_isa, threads=4)
    match = platforms.compare(other, HERE)
    assert not match.same and not match.unknown
    assert match.differs == [
        f"cpu_capability: {other_isa!r} recorded, {here_isa!r} here",
        "threads: 4 recorded, 2 here",
    ]


def test_keys_that_decide_no_bit_are_not_compared():
    other = dict(HERE, os="Another OS", allocator="default", safetensors="0.1")
    assert platforms.compare(other, HERE).same


def test_an_older_record_is_unknown_not_the_same():
    """artifacts/cpu's records predate the instruction-set keys: on any CPU, its platform can
    not be called the same (the verdict there is 'platform differs or unknown')."""
    published = json.loads((REPO / "artifacts/cpu/results.json").read_text())
    old = published["trials"][0]["environment"]
    match = platforms.compare(old, HERE)
    assert not match.same
    assert {"cpu_capability", "cpu_family", "cpu_isa", "cpu_bf16", "mkl"} <= set(match.unknown)
    assert "not recorded: " in match.describe()


def test_a_gpu_record_is_compared_on_the_gpu_keys_only():
    gpu = dict(
        HERE,
        device_type="cuda",
        device_name="NVIDIA H200",
        cuda_capability="9.0",
        cuda="12.6",
        cudnn=90501,
    )
    other_host = dict(gpu, cpu_model="Another CPU", threads=16, cpu_capability="AVX512")
    assert platforms.compare(gpu, other_host).same
    match = platforms.compare(gpu, dict(gpu, device_name="NVIDIA H100", cuda_capability="9.0"))
    assert match.differs == ["device_name: 'NVIDIA H200' recorded, 'NVIDIA H100' here"]


def test_describe_names_the_cpu_kind():
    env = dict(
        HERE,
        cpu_model="AMD EPYC",
        cpu_family="25",
        cpu_model_number="1",
        cpu_capability="AVX2",
        cpu_bf16="none",
    )
    assert (
        platforms.describe(env) == "AMD EPYC (family 25 model 1), AVX2, no native bf16, 2 threads"
    )
    old = {"cpu_model": "AMD EPYC", "threads": 2}
    assert platforms.describe(old) == "AMD EPYC, 2 threads"
    gpu = {"device_type": "cuda", "device_name": "NVIDIA H200", "cuda_capability": "9.0"}
    assert platforms.describe(gpu) == "NVIDIA H200, sm 9.0"


def test_platform_command_prints_this_machine(capsys):
    assert charlm_main(["platform"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == platforms.describe(HERE)
    assert f"  cpu_capability    {HERE['cpu_capability']}" in out
    assert charlm_main(["platform", "--json", "--threads", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["threads"] == 3


def test_platform_command_refuses_an_unavailable_device(capsys):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert charlm_main(["platform", "--device", "cuda"]) == 2
    assert capsys.readouterr().err.startswith("error: --device: ")
