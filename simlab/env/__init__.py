"""Layer 1: validated environment specs, instances and their exact pair atoms."""
from simlab.env.atoms import PairAtoms
from simlab.env.environment import Env, make_env, noise_law
from simlab.env.presets import preset
from simlab.env.spec import EnvSpec

__all__ = ["Env", "EnvSpec", "PairAtoms", "make_env", "noise_law", "preset"]
