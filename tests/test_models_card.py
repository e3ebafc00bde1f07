import json

import pytest

from xaisec.models.card import card_fields, find_card, read_card, write_card
from xaisec.utils.checks import XaisecError


def test_json_and_toml_cards_give_the_same_fields(tmp_path):
    fields = {"arch": "resnet20", "mean": [0.5], "std": [0.25], "cam_layer": "layer3", "classes": ["a", "b"],
              "input_size": [1, 32, 32]}
    write_card(tmp_path / "card.json", **fields)
    (tmp_path / "card.toml").write_text('arch = "resnet20"\nmean = [0.5]\nstd = [0.25]\ncam_layer = "layer3"\n'
                                        'classes = ["a", "b"]\ninput_size = [1, 32, 32]\n')
    a = card_fields(read_card(tmp_path / "card.json"))
    b = card_fields(read_card(tmp_path / "card.toml"))
    assert a == b
    assert a["input_size"] == (1, 32, 32) and a["classes"] == ["a", "b"] and a["fc_layer"] is None
    assert json.loads((tmp_path / "card.json").read_text())["format"].startswith("xaisec-model-card")


def test_training_card_fallbacks():
    f = card_fields({"model": "cifar10_resnet20_at", "architecture": "cifar10_resnet20",
                     "normalisation": {"mean": [0.1, 0.2, 0.3], "std": [1, 1, 1]}, "data": {"classes": ["x", "y"]}})
    assert f["mean"] == [0.1, 0.2, 0.3] and f["classes"] == ["x", "y"] and f["architecture"] == "cifar10_resnet20"


def test_find_card_in_a_folder_and_beside_a_file(tmp_path):
    assert find_card(tmp_path) is None
    (tmp_path / "model.pt").write_bytes(b"x")
    (tmp_path / "model.json").write_text("{}")
    assert find_card(tmp_path / "model.pt") == tmp_path / "model.json"
    assert find_card(tmp_path) == tmp_path / "model.json"
    (tmp_path / "card.toml").write_text("")
    assert find_card(tmp_path) == tmp_path / "card.toml"


@pytest.mark.parametrize(("card", "fragment"), [
    ({"mean": ["a"]}, "mean"),
    ({"std": [float("nan")]}, "finite"),
    ({"classes": []}, "classes"),
    ({"input_size": [3, 32]}, "input_size"),
    ({"cam_layer": 3}, "cam_layer"),
    ({"arch_options": [1]}, "arch_options"),
])
def test_bad_fields_are_named(card, fragment):
    with pytest.raises(XaisecError, match=fragment):
        card_fields(card)


def test_unreadable_card_files(tmp_path):
    with pytest.raises(XaisecError, match="no such model card"):
        read_card(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(XaisecError, match="not a readable"):
        read_card(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(XaisecError, match="JSON object"):
        read_card(tmp_path / "list.json")
