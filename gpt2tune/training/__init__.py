"""Training: from a TuneConfig to a saved model.

`prepare` is the one set-up (data, devices, model, vocabulary, split, token rows) that both `checks`
(the `check` command and the Checks tab, which stops there and reports) and `train` use; `train` owns
the Trainer, its loop and the out-of-memory retry; `oom` is the policy that detects, explains and
halves; `callbacks` turn the Trainer's life into events; `results` records metrics, history and outputs.
`adapters` wraps the model in LoRA adapters (method lora), `memory` estimates training memory for
both methods, and `tracking` wires the Trainer's TensorBoard and Trackio logging into the run folder.
`runner` owns the app's one background training job.
"""
