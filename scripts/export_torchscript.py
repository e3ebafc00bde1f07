"""Export any model xaisec can load as a TorchScript file plus its JSON card, for ``--model model.pt``.

    python scripts/export_torchscript.py cifar10_resnet20 runs/r20.pt
    python scripts/export_torchscript.py runs/my_model_dir runs/my_model.pt

The network is split at its CAM layer (``forward_features`` / ``forward_head``), so CAM-type
interpreters work on the file too; the card (``runs/r20.json``) carries mean, std, classes and input size.
"""

from __future__ import annotations

import argparse

from xaisec.models.loading import export_torchscript, load_model_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a zoo name, a model folder, a factory module:function, ...")
    ap.add_argument("out", help="the .pt file to write (its card goes beside it as .json)")
    ap.add_argument("--weights", default=None)
    a = ap.parse_args()
    path, card = export_torchscript(load_model_spec(a.model, weights=a.weights, device="cpu"), a.out)
    print(f"wrote {path} and {card}")


if __name__ == "__main__":
    main()
