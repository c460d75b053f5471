"""LoRA adapters (the `peft` library): wrap a loaded GPT-2 for training, save it merged, count what trains.

With `method = "lora"` the pre-trained weights stay frozen and each targeted layer gets two small
matrices A (r × in) and B (out × r) whose product, scaled by alpha / r, is added to its output. B
starts at zero, so training starts from exactly the base model. Only A and B get gradients and
optimizer state, and only they are saved (adapter_model.safetensors + adapter_config.json); the
base model named in adapter_config.json is loaded first whenever the adapter is used
(`gpt2tune.model.load_model` does this for a folder or a Hub id).

GPT-2's attention and MLP layers are `Conv1D`, which stores its weight as (in, out), the transpose
of `nn.Linear`; peft needs `fan_in_fan_out=True` for them, set here from the modules themselves.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from gpt2tune.runs.artifacts import ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE


def targeted_modules(model, targets) -> list[tuple[str, object]]:
    """(name, module) of every layer a LoRA with these target names would adapt.

    The same rule as peft: a target matches a module whose dotted name is it or ends with it."""
    targets = [t.strip() for t in targets if t and t.strip()]
    return [(name, module) for name, module in model.named_modules()
            if any(name == t or name.endswith("." + t) for t in targets) and _in_out(module) is not None]


def lora_parameter_count(model, r: int, targets) -> int:
    """Parameters LoRA trains: r · (in + out) for each adapted layer (A is r × in, B is out × r)."""
    return sum(r * sum(_in_out(module)) for _, module in targeted_modules(model, targets))


def wrap(model, config):
    """The model to train: unchanged for full fine-tuning, a peft `PeftModel` with fresh LoRA
    adapters (base frozen) for method lora. Seeded, so the adapters' initialisation repeats."""
    if config.method != "lora":
        return model
    from peft import LoraConfig, get_peft_model
    from transformers import set_seed
    from transformers.pytorch_utils import Conv1D

    found = targeted_modules(model, config.lora_target_modules)
    missing = [t for t in config.lora_target_modules
               if t.strip() and not any(n == t or n.endswith("." + t) for n, _ in found)]
    if missing:
        names = sorted({name.rsplit(".", 1)[-1] for name, _ in targeted_modules(model, _all_leaf_names(model))})
        raise ValueError(f"lora_target_modules: {', '.join(missing)} not found in the model; "
                         f"its adaptable layers are {', '.join(names)}")
    conv1d = [isinstance(module, Conv1D) for _, module in found]
    if any(conv1d) and not all(conv1d):
        raise ValueError("lora_target_modules mixes Conv1D and Linear layers; adapt one kind at a time")
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=[t.strip() for t in config.lora_target_modules if t.strip()],
        fan_in_fan_out=all(conv1d),  # GPT-2's Conv1D stores weights transposed
        bias="none",
        task_type="CAUSAL_LM",
    )
    set_seed(config.seed)
    with warnings.catch_warnings():
        # peft (0.21) asks the model `is_gradient_checkpointing`, which transformers 5 deprecates in favour
        # of `is_activation_checkpointing`: a FutureWarning on every LoRA run that no user can act on.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
        return get_peft_model(model, lora)


def prepare(model, config, base_model: str, status=None):
    """`wrap`, then name the base in the adapter's config; says what trains through `status`."""
    model = wrap(model, config)
    if config.method == "lora":
        record_base_model(model, hub_id_of_cached(base_model, config.base_model))
        if status is not None:
            status(describe(model))
    return model


def run_record(model, config) -> dict:
    """What metrics.json says about the method: which one, and how many parameters trained."""
    record = {"method": config.method, "trainable_parameters": trainable_parameter_count(model)}
    if config.method == "lora":
        record["lora"] = {"r": config.lora_r, "alpha": config.lora_alpha, "dropout": config.lora_dropout,
                          "target_modules": list(config.lora_target_modules), "merged": config.merge_lora}
    return record


def describe(model) -> str:
    """One line: how many parameters train, of how many."""
    trainable, total = trainable_parameter_count(model), sum(p.numel() for p in model.parameters())
    return f"LoRA adapters: training {trainable:,} of {total:,} parameters ({100 * trainable / total:.2f}%)"


def trainable_parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def record_base_model(model, base_model: str) -> None:
    """Name the base in adapter_config.json as something another machine can load: the Hub id
    when the weights came from its cached copy, else the folder as an absolute path."""
    peft_config = model.peft_config["default"]
    peft_config.base_model_name_or_path = base_model if not Path(base_model).is_dir() else str(
        Path(base_model).resolve())


def hub_id_of_cached(resolved: str, requested: str) -> str:
    """`requested` when `resolved` is the Hub cache's copy of it (offline), else `resolved`."""
    marker = "models--" + requested.replace("/", "--")
    return requested if marker in Path(resolved).parts else resolved


def save_merged(model, tokenizer, folder: Path) -> None:
    """Full weights with the adapters merged in: loads with plain transformers, no peft needed.

    Merging replaces each adapted layer's weight by W + (alpha / r)·(B A) in place and removes the
    adapters, so it is done once, after the adapter itself has been saved."""
    merged = model.merge_and_unload()
    merged.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))


def is_adapter_folder(folder) -> bool:
    return (Path(folder) / ADAPTER_CONFIG_FILE).is_file()


def check_resume(checkpoint: Path, method: str) -> None:
    """A checkpoint resumes only the kind of run that wrote it."""
    adapter = (Path(checkpoint) / ADAPTER_WEIGHTS_FILE).exists()
    if adapter != (method == "lora"):
        kind = "LoRA adapters" if adapter else "full weights"
        raise ValueError(f"--resume: {checkpoint} holds {kind}; resume it with --method "
                         f"{'lora' if adapter else 'full'}")


def _in_out(module) -> tuple[int, int] | None:
    """(in, out) features of a layer LoRA can adapt (Linear or GPT-2's Conv1D), else None."""
    import torch
    from transformers.pytorch_utils import Conv1D

    if isinstance(module, Conv1D):
        return module.weight.shape[0], module.weight.shape[1]  # stored (in, out)
    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    return None


def _all_leaf_names(model) -> list[str]:
    return [name.rsplit(".", 1)[-1] for name, _ in model.named_modules() if name]
