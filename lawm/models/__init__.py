"""Models: inverse dynamics, the frame-causal predictor, the information regularisers, and their union."""

from lawm.models.idm import InverseDynamics
from lawm.models.latent_action_model import LatentActionModel, build_latent_action_model
from lawm.models.predictor import Predictor
from lawm.models.regularizers import RegOutput, Regularizer, build_regularizer

__all__ = ["InverseDynamics", "LatentActionModel", "Predictor", "RegOutput", "Regularizer",
           "build_latent_action_model", "build_regularizer"]
