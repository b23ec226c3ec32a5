"""The safe set's per-point posterior (:func:`evidence.marginal`: mean and standard deviation)
against botorch's joint one."""

import gpytorch
import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.models.transforms import Normalize, Standardize

from uedsteer.controller.safe.evidence import marginal


def _gp(n, noise=None, standardize=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, generator=g, dtype=torch.float64) * torch.tensor([6.0, 600.0, 95.0])
    y = (torch.sin(x[:, :1]) + 0.01 * x[:, 1:2] + 0.1 * torch.randn(n, 1, generator=g)).double()
    return SingleTaskGP(
        x,
        y,
        train_Yvar=None if noise is None else torch.full_like(y, noise),
        input_transform=Normalize(3, bounds=torch.tensor([[0.0] * 3, [6.0, 600.0, 95.0]])),
        outcome_transform=Standardize(1) if standardize else None,
    ).double()


@pytest.mark.parametrize(
    ("n", "noise", "standardize"),
    [(40, None, True), (40, 1e-3, True), (60, None, False), (30, 1e-4, False)],
)
def test_means_and_variances_are_the_joint_posteriors(n, noise, standardize):
    gp = _gp(n, noise, standardize)
    x = torch.rand(300, 3, dtype=torch.float64) * torch.tensor([7.0, 700.0, 100.0])
    mean, sd = marginal(gp, x)
    with torch.no_grad():
        joint = gp.posterior(x)
    assert mean.shape == sd.shape == (300,)
    torch.testing.assert_close(mean, joint.mean.reshape(-1), rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(sd**2, joint.variance.reshape(-1), rtol=1e-6, atol=1e-12)
    assert (sd > 0).all(), "far from the data the variance is the prior's, never below zero"


def test_beyond_the_cholesky_size_each_point_is_its_own_posterior():
    gp = _gp(50)
    x = torch.rand(20, 3, dtype=torch.float64) * torch.tensor([6.0, 600.0, 95.0])
    with gpytorch.settings.max_cholesky_size(10), torch.no_grad():
        mean, sd = marginal(gp, x)
        one = gp.posterior(x.unsqueeze(-2))
    torch.testing.assert_close(mean, one.mean.reshape(-1))
    torch.testing.assert_close(sd**2, one.variance.reshape(-1))
