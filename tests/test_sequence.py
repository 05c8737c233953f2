"""Bal & Sengupta 2023's sequence models (eqbench.models.sequence): structure, the retrieval step, errors."""

from __future__ import annotations

import pytest
import torch

from eqbench import BPTT, EP, build_model, relax
from eqbench.errors import ConfigError


def _imdb(**kw):
    torch.manual_seed(0)
    return build_model("SEQ_IMDB", seq_len=5, dim=6, fc=[7, 2], **kw).double()


def test_shapes_and_layer_groups():
    snli = build_model("SEQ_SNLI", seq_len=4, dim=6, fc=[9, 3])
    assert snli.in_shape == (8, 6) and snli.scale == 0.16
    assert snli.state_shapes() == [(4, 6)] * 4 + [(9,), (3,)]
    assert [len(g) for g in snli.layer_parameters()] == [1, 1, 1, 1, 2, 2]  # 4 projection maps, then fc w + b
    assert _imdb().scale == pytest.approx(6 ** -0.5)  # IMDB: 1/√d


def test_drive_is_the_query_of_the_retrieval():
    # the projection layer's drive ∂Φ/∂s1 is the authors' query P x + (W0ᵀ h1) reshaped per token
    m = _imdb()
    x = torch.rand(3, 5, 6, dtype=torch.float64)
    s = [torch.rand(3, *sh, dtype=torch.float64) for sh in m.state_shapes()]
    g = m.drive(x, s)[0]
    expected = m.proj[0](x) + (s[1] @ m.synapses[0].weight).reshape(3, 5, 6)
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-12)


def test_retrieval_step_is_softmax_attention_over_the_input():
    m = _imdb()
    x = torch.rand(3, 5, 6, dtype=torch.float64)
    s = [torch.rand(3, *sh, dtype=torch.float64) for sh in m.state_shapes()]
    u = m.drive(x, s)
    new = m.update(s, u, x)
    weights = torch.softmax(m.scale * u[0] @ x.transpose(1, 2), dim=-1)
    torch.testing.assert_close(new[0], weights @ x, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(new[1], m.act(u[1]))
    # each retrieved token is a convex combination of the input tokens
    assert bool((weights.sum(-1) - 1).abs().max() < 1e-12)


def test_snli_projections_read_their_segments():
    # s1: premise → keys hypothesis; s2: hypothesis → premise; s3, s4: self-attention (Bal & Sengupta §E.2)
    torch.manual_seed(0)
    m = build_model("SEQ_SNLI", seq_len=3, dim=4, fc=[5, 3]).double()
    x = torch.rand(2, 6, 4, dtype=torch.float64)
    p, h = x[:, :3], x[:, 3:]
    s = [torch.zeros(2, *sh, dtype=torch.float64) for sh in m.state_shapes()]
    u = m.drive(x, s)
    new = m.update(s, u, x)
    for k, (src, kv) in enumerate([(p, h), (h, p), (p, p), (h, h)]):
        torch.testing.assert_close(u[k], m.proj[k](src))
        torch.testing.assert_close(new[k], torch.softmax(0.16 * u[k] @ kv.transpose(1, 2), -1) @ kv)


def test_cccp_step_adds_the_retrieval_of_the_state_to_the_drive():
    # retrieval "cccp": Φ gains (1/c)·Σ_t lse(c·s_t Xᵀ), so u = ∂Φ/∂s1 = g + softmax(c·s1 Xᵀ)X, and the step is u
    # itself (the scale is pinned: the lse term with 1/(2c) would add half the retrieval)
    m = _imdb()
    c = _imdb(retrieval="cccp")
    x = torch.rand(3, 5, 6, dtype=torch.float64)
    s = [torch.rand(3, *sh, dtype=torch.float64) for sh in m.state_shapes()]
    g, u = m.drive(x, s), c.drive(x, s)
    torch.testing.assert_close(u[0], g[0] + torch.softmax(c.scale * s[0] @ x.transpose(1, 2), -1) @ x)
    torch.testing.assert_close(u[1:], g[1:])  # the fc drives are the same
    new = c.update(s, u, x)
    torch.testing.assert_close(new[0], u[0])
    torch.testing.assert_close(new[1], c.act(u[1]))
    # ∂Φ/∂θ is the same form in both variants: the lse term holds no parameter
    theta_a = torch.autograd.grad(m.phi(x, s).sum(), list(m.parameters()))
    theta_c = torch.autograd.grad(c.phi(x, s).sum(), list(c.parameters()))
    torch.testing.assert_close(theta_a, theta_c)


def test_ep_and_bptt_train_it():
    m = _imdb()
    x = torch.rand(4, 5, 6, dtype=torch.float64)
    y = torch.tensor([0, 1, 1, 0])
    for rule in (EP(beta=0.1, T1=20, T2=5, estimator="symmetric"), BPTT(T1=20, T2=5)):
        info = rule.compute_gradients(m, x, y)
        assert info["output"].shape == (4, 2)
        assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in m.parameters())
    relax(m, x, m.init_state(x), 3)


def test_errors():
    from eqbench.models.sequence import SequenceEP

    with pytest.raises(ConfigError, match=r"segment pairs in \[0, 1\)"):
        SequenceEP(4, 4, segments=1, projections=[[0, 1]], fc=[3, 2])
    with pytest.raises(ConfigError, match="synchronously"):
        relax(_imdb(), torch.rand(1, 5, 6, dtype=torch.float64), _imdb().init_state(torch.rand(1, 5, 6)), 2,
              mode="async")
    with pytest.raises(ConfigError, match="positive"):
        build_model("SEQ_IMDB", seq_len=0)
    with pytest.raises(ConfigError, match="retrieval must be one of authors, cccp"):
        build_model("SEQ_IMDB", retrieval="ccp")
    with pytest.raises(ConfigError, match="scale must be positive"):
        build_model("SEQ_IMDB", retrieval="cccp", scale=0.0)  # the lse term divides by the scale
