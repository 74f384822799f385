"""Models: inverse dynamics, the frame-causal predictor, the information regularisers, their union,
the real-action world model and the controllers."""

from lawm.models.action_world_model import ActionWorldModel
from lawm.models.controller import ActionOnlyController, ControlledWorldModel, Controller
from lawm.models.idm import InverseDynamics
from lawm.models.latent_action_model import LatentActionModel, build_latent_action_model
from lawm.models.predictor import Predictor
from lawm.models.regularizers import RegOutput, Regularizer, build_regularizer

__all__ = ["ActionOnlyController", "ActionWorldModel", "ControlledWorldModel", "Controller", "InverseDynamics",
           "LatentActionModel", "Predictor", "RegOutput", "Regularizer", "build_latent_action_model",
           "build_regularizer"]
