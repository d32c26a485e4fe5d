"""The losses `train.loss` names (the targets each expects, what val_acc means for it, its
arguments), and the rules for what a model gets and gives. Imports no torch.

One table for config validation, `danlu check`, docs/config.md and the messages a run
prints; engine/build/loss.py maps each name to its torch function, engine/build/fit.py
applies the rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .knobs import Knob


@dataclass(frozen=True)
class LossSpec:
    """One built-in loss."""

    function: str            # torch.nn.functional.<function>
    classification: bool     # the model gives one logit per class (num_classes outputs)
    targets: str             # what the dataset's labels must be, in words
    accuracy: str | None     # how val_acc is counted; None: not reported (it would mean nothing)
    args: dict[str, Knob] = field(default_factory=dict)


LOSSES: dict[str, LossSpec] = {
    "cross_entropy": LossSpec(
        "cross_entropy", True,
        "class indices, shape (N,) or (N, 1), any integer dtype (or whole numbers as floats), in [0, num_classes); "
        "or class probabilities / one-hot rows, shape (N, num_classes). The model gives num_classes logits.",
        "argmax of the output equals the class (the argmax of the target row for probabilities)",
        {"label_smoothing": Knob("float", 0.0, "Mix this much of the uniform distribution into the targets.",
                                 min=0, max=1)}),
    "bce_with_logits": LossSpec(
        "binary_cross_entropy_with_logits", False,
        "0/1 labels (or probabilities) of any number dtype, one per output: shape (N,) for one yes/no "
        "question, (N, K) for K independent labels. The model gives one logit per label (no sigmoid).",
        "output > 0 agrees with target > 0.5, counted over every label",
        {"pos_weight": Knob("float", None, "Weight of the positive class (negatives / positives for balance).",
                            gt=0, optional=True)}),
    "mse": LossSpec(
        "mse_loss", False,
        "numbers to predict (any number dtype), shape (N,) or (N, ...): the model gives one output per "
        "target value.", None),
    "l1": LossSpec(
        "l1_loss", False,
        "numbers to predict, as for mse.", None),
    "smooth_l1": LossSpec(
        "smooth_l1_loss", False,
        "numbers to predict, as for mse.", None,
        {"beta": Knob("float", 1.0, "Below this absolute error the loss is quadratic, above it linear.", gt=0)}),
}

# What the model gets and gives (engine/build/fit.py applies these; docs/config.md shows them).
INPUT_RULE = ("Floating inputs are cast to the model's floating dtype (float64 data into a float32 model). "
              "Integer inputs go in as they are when the model takes them (token ids for an nn.Embedding); when "
              "it does not, they are cast to float, and uint8 is also divided by 255 (8-bit pixels, as "
              "torchvision's ToTensor does). Targets are cast per batch to what the loss needs (the table below).")
OUTPUT_RULE = ("a tensor is the output; an object with a .logits tensor (torchvision's GoogLeNetOutputs and "
               "InceptionOutputs when aux logits are on, Hugging Face model outputs) gives .logits; a dict gives "
               "its 'logits' entry, else its 'out' entry (torchvision segmentation models); a tuple or list gives "
               "its first element. Auxiliary outputs take no part in the loss.")
LAZY_RULE = ("Lazy layers (nn.LazyLinear, nn.LazyConv2d, ...) get their shapes from one forward pass over the "
             "first few training items, in eval mode and without gradients, before the init, the optimizer "
             "and the parameter count; the same pass checks the output against the targets and the loss, so "
             "a mismatch stops the run before its first step with a message.")
OUTPUTS_RULE = ("The number of outputs a built-in or torchvision model is built with (and the num_classes a "
                "model.name=module:callable builder is given): the number of classes for cross_entropy (from "
                "the dataset's classes or num_classes, or the width of one-hot targets); for the other losses "
                "the number of values in one item's target (1 for a scalar).")

DEFAULT_LOSS = "cross_entropy"
REGRESSION_HINT = "train.loss=mse (or l1, smooth_l1)"


def is_user_loss(name: str) -> bool:
    """`module:callable` or `path/file.py:callable`: the user's own loss."""
    return ":" in name


def classification(name: str) -> bool:
    """The model gives one logit per class: its output size is the dataset's number of classes."""
    spec = LOSSES.get(name)
    return spec is not None and spec.classification


def check_loss(name: str, args: dict, problems: list[str]) -> None:
    """Problems with train.loss and train.loss_args, added to `problems`."""
    from .knobs import check_value

    if is_user_loss(name):
        return  # their callable takes what it takes; a mismatch is reported when it is built
    spec = LOSSES.get(name)
    if spec is None:
        import difflib
        # torch's names (MSELoss, CrossEntropyLoss, mse_loss) find ours once "loss" and case are gone
        bare = {n.replace("_", ""): n for n in LOSSES}
        key = name.lower().replace("loss", "").replace("_", "")
        hint = [bare[key]] if key in bare else difflib.get_close_matches(name, list(LOSSES), n=1)
        problems.append(f"train.loss: unknown loss {name!r}; use one of {', '.join(LOSSES)} or "
                        f"'package.module:callable' (e.g. torch.nn:HuberLoss)."
                        + (f" Did you mean {hint[0]!r}?" if hint else ""))
        return
    for key, value in (args or {}).items():
        knob = spec.args.get(key)
        if knob is None:
            takes = ", ".join(spec.args) if spec.args else "no arguments"
            others = [n for n, s in LOSSES.items() if key in s.args]
            where = f"; {', '.join(others)} does" if others else ""
            problems.append(f"train.loss_args.{key}: {name} does not take it (it takes {takes}{where})")
            continue
        args[key] = check_value(f"train.loss_args.{key}", value, knob, problems)
