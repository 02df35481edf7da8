"""`--device auto` everywhere: what `auto` resolves to on machines with and without CUDA and MPS
(availability monkeypatched), and which rule each command asks for by default."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from chargen.cli import app
from chargen.device import resolve_device

V1 = Path(__file__).resolve().parent.parent / "fixtures" / "v1-gru-best.pt"


@pytest.fixture
def machine(monkeypatch):
    """Pretend to be a machine with the given accelerators."""
    def pretend(cuda: bool, mps: bool) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return pretend


@pytest.mark.parametrize("cuda, mps, general, stepwise", [
    (True, True, "cuda", "cuda"),
    (True, False, "cuda", "cuda"),
    (False, True, "mps", "cpu"),  # MPS's cost per step: never for sampling one character at a time
    (False, False, "cpu", "cpu"),
])
def test_auto_picks_cuda_then_mps_then_cpu(machine, cuda, mps, general, stepwise):
    """auto is CUDA when there is one; MPS only where mps=True (training, eval); else the CPU."""
    machine(cuda, mps)
    assert resolve_device("auto") == torch.device(general)
    assert resolve_device("auto", mps=False) == torch.device(stepwise)
    assert resolve_device("cpu", mps=False) == torch.device("cpu")  # an explicit device is taken as given


def spy(monkeypatch, module: str) -> list:
    """Record what a command passes to resolve_device, and run it on the CPU."""
    calls = []

    def resolve(spec="auto", mps=True):
        calls.append((spec, mps))
        return torch.device("cpu")

    monkeypatch.setattr(f"chargen.cli.{module}.resolve_device", resolve)
    return calls


@pytest.mark.parametrize("module, args, want", [
    ("sample", ["sample", V1, "--length", "3", "--seed", "1"], ("auto", False)),
    ("sample", ["eval", V1, Path(__file__).resolve().parent.parent / "fixtures" / "v1-corpus.txt", "--json"],
     ("auto", True)),
    ("gradflow", ["gradflow", V1, "--max-lag", "3", "--json"], ("auto", False)),
])
def test_commands_default_to_auto(monkeypatch, module, args, want):
    """sample and gradflow default to auto without MPS, eval to auto with it; an explicit --device is passed on."""
    calls = spy(monkeypatch, module)
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.stderr
    assert calls == [want]
    calls.clear()
    again = CliRunner().invoke(app, [str(a) for a in args] + ["--device", "cuda:0"])
    assert again.exit_code == 0, again.stderr
    assert calls == [("cuda:0", want[1])]


def test_auto_sample_on_a_cpu_only_machine_is_the_cpu_text(machine):
    """On a machine without CUDA, the default (auto) samples exactly what --device cpu samples."""
    machine(False, True)
    args = ["sample", str(V1), "--length", "30", "--seed", "4"]
    auto, cpu = CliRunner().invoke(app, args), CliRunner().invoke(app, args + ["--device", "cpu"])
    assert auto.exit_code == 0 and auto.stdout == cpu.stdout and len(auto.stdout) == 31
