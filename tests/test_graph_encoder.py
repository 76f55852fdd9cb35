"""`BasisRGCNConv` must compute exactly what torch-geometric's ``RGCNConv`` computes."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.nn import RGCNConv

from fusion.graph_encoder import BasisRGCNConv


def _pair(relations: int, bases: int) -> tuple[RGCNConv, BasisRGCNConv]:
    torch.manual_seed(0)
    reference = RGCNConv(6, 5, relations, num_bases=bases)
    torch.nn.init.normal_(reference.bias)  # non-zero, so a dropped bias would show
    batched = BasisRGCNConv(6, 5, relations, bases)
    batched.load_state_dict(reference.state_dict())  # the same parameters, by name and shape
    return reference, batched


@pytest.mark.parametrize("edges", [0, 1, 40])
def test_same_output_and_gradients_as_rgcnconv(edges: int) -> None:
    relations = 7
    reference, batched = _pair(relations, bases=3)
    generator = torch.Generator().manual_seed(edges)
    x = torch.randn(9, 6, generator=generator)
    # repeated (target, relation) pairs exercise the per-relation mean; relation 6 never occurs
    edge_index = torch.randint(0, 9, (2, edges), generator=generator)
    edge_type = torch.randint(0, relations - 1, (edges,), generator=generator)
    outputs, grads = [], []
    for conv in (reference, batched):
        inputs = x.clone().requires_grad_(True)
        out = conv(inputs, edge_index, edge_type)
        (out * torch.arange(out.numel()).view_as(out)).sum().backward()
        outputs.append(out)
        grads.append([inputs.grad] + [p.grad for p in (conv.weight, conv.comp, conv.root)])
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for got, want in zip(grads[1], grads[0], strict=True):
        assert want is not None
        # with no edges the relation weights get no gradient here and zeros there
        got = torch.zeros_like(want) if got is None and edges == 0 else got
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_state_dicts_are_interchangeable() -> None:
    reference, batched = _pair(4, bases=2)
    assert list(batched.state_dict()) == list(reference.state_dict())
    assert {k: v.shape for k, v in batched.state_dict().items()} == {
        k: v.shape for k, v in reference.state_dict().items()
    }
