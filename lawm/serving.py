"""lawm's saved models as MLflow pyfunc models: `mlflow.pyfunc.load_model("models:/<name>@current")`.

`tracking.log_model` logs this file as the model's code (MLflow's models from code) beside the
stage's own weights file, `model.pt` (read with `torch.load(weights_only=True)`), so loading
unpickles nothing. Inputs and outputs are float32 arrays:

- a latent-action model: {"states": [B, T, N, D]} -> its latent actions [B, T-1, L];
- a real-action world model: {"states": [B, T, N, D], "actions": [B, T-1, A]} -> the predicted
  next states [B, T-1, N, D] (teacher-forced).
"""

from __future__ import annotations

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class SavedModel(PythonModel):
    # The signature is explicit (`tracking.log_model`): MLflow checks inputs against it, so `predict`
    # is not typed (MLflow would read hints as a second schema) and MLflow need not ask for hints.
    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        from lawm.models.saved import load_model

        self.model = load_model(context.artifacts["weights"])

    def predict(self, context, model_input, params=None):
        import torch

        states = torch.as_tensor(np.asarray(model_input["states"], dtype=np.float32))  # [B, T, N, D]
        with torch.no_grad():
            if "actions" in model_input:
                actions = torch.as_tensor(np.asarray(model_input["actions"], dtype=np.float32))  # [B, T-1, A]
                return self.model(states, actions)["pred"].numpy()  # [B, T-1, N, D]
            return self.model.infer_latents(states).numpy()  # [B, T-1, L]


mlflow.models.set_model(SavedModel())
