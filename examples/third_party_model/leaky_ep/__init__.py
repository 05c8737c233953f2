"""leaky_ep: an equilibrium-propagation model written outside eqbench and checked with eqbench's conformance kit."""

from .model import LeakyMLP, SoftClip, leaky_mlp, leaky_mlp_broken

__all__ = ["LeakyMLP", "SoftClip", "leaky_mlp", "leaky_mlp_broken"]
