"""One GRU step of a chargen checkpoint as an ONNX file, for the onnxruntime-web benchmark.

Owns only the export the harness loads: ids (1,) int64 and h (L,1,H) float32 in, logits (1,V) and
h_out (L,1,H) out, every weight inside the one .onnx file. It is not chargen's exporter (chargen/export).
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class GRUStep(nn.Module):
    """The checkpoint's embedding, GRU layers and head, one character at a time, written from the GRU
    equations (torch's gate order r, z, n) so the exported graph is plain MatMul/Sigmoid/Tanh."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        rnn = model.rnn
        self.num_layers, self.hidden_size = rnn.num_layers, rnn.hidden_size
        # Buffers, not parameters: the export bakes them into the graph as initializers either way.
        self.register_buffer("embedding", model.embedding.weight.detach().clone())  # (V, E)
        for name, p in rnn.named_parameters():
            self.register_buffer(name, p.detach().clone())
        self.register_buffer("head_w", model.head.weight.detach().clone())  # (V, H)
        self.register_buffer("head_b", model.head.bias.detach().clone())  # (V,)

    def forward(self, ids: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.embedding[ids]  # (1, E)
        states = []
        for layer in range(self.num_layers):
            w_ih, w_hh = getattr(self, f"weight_ih_l{layer}"), getattr(self, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(self, f"bias_ih_l{layer}"), getattr(self, f"bias_hh_l{layer}")
            prev = h[layer]  # (1, H)
            gi = x @ w_ih.T + b_ih  # (1, 3H)
            gh = prev @ w_hh.T + b_hh  # (1, 3H)
            i_r, i_z, i_n = gi.chunk(3, dim=1)
            h_r, h_z, h_n = gh.chunk(3, dim=1)
            r = torch.sigmoid(i_r + h_r)
            z = torch.sigmoid(i_z + h_z)
            # The reset gate scales the hidden part of the candidate only, bias included (torch's GRU).
            n = torch.tanh(i_n + r * h_n)
            x = (1 - z) * n + z * prev  # (1, H)
            states.append(x)
        logits = x @ self.head_w.T + self.head_b  # (1, V)
        return logits, torch.stack(states)  # (1, V), (L, 1, H)


def export_step(checkpoint: Path, out: Path) -> dict:
    """Write the step model of `checkpoint` to `out` (one self-contained .onnx) and check it against the
    checkpoint's own CharRNN over 50 characters, and against Python onnxruntime. Returns the vocabulary
    (a list of characters), the shape and the largest differences seen."""
    from chargen.modelfile import load_model

    model, vocab, _ = load_model(checkpoint)
    model.eval()
    step = GRUStep(model).eval()
    L, H = step.num_layers, step.hidden_size
    ids, h = torch.zeros(1, dtype=torch.int64), torch.zeros(L, 1, H)
    torch.onnx.export(step, (ids, h), str(out), dynamo=True, external_data=False,
                      input_names=["ids", "h"], output_names=["logits", "h_out"])
    return {"vocab": list(vocab.chars), "layers": L, "hidden": H, **_check(model, step, out, len(vocab.chars))}


def _check(model: nn.Module, step: GRUStep, path: Path, vocab_size: int) -> dict:
    """Largest |difference| of logits between the step module, the CharRNN and onnxruntime over 50 steps."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(0)
    seq = torch.randint(0, vocab_size, (1, 50), generator=gen)  # (1, T)
    with torch.no_grad():
        full, _ = model(seq)  # (1, T, V)
        h = torch.zeros(step.num_layers, 1, step.hidden_size)
        h_onnx = h.numpy()
        torch_diff = onnx_diff = 0.0
        for t in range(seq.shape[1]):
            logits, h = step(seq[:, t], h)
            o_logits, h_onnx = session.run(None, {"ids": seq[:, t].numpy(), "h": h_onnx})
            torch_diff = max(torch_diff, (logits - full[:, t]).abs().max().item())
            onnx_diff = max(onnx_diff, (torch.from_numpy(o_logits) - logits).abs().max().item())
    return {"max_diff_vs_charrnn": torch_diff, "max_diff_vs_onnxruntime": onnx_diff}
