from __future__ import annotations

import ast
import itertools
import json
from pathlib import Path

import pytest
import torch

from research.data.dataset import FeatureDataset
from research.engine.checkpoints import build_model, load_checkpoint
from research.errors import ConfigError
from research.models import count_parameters, create_model, list_models, model_arguments

from .conftest import ROOT

LEGACY = Path(__file__).parent / "data" / "legacy_checkpoints"
SIZES = {"hidden_size": 32, "num_layers": 2, "num_heads": 4, "dropout": 0.1, "classifier_dropout": 0.1}


def small(name: str) -> dict:
    """The small sizes, for those a family takes."""
    return {k: v for k, v in SIZES.items() if k in model_arguments(name)}


def test_registry_has_the_required_families() -> None:
    assert {"super_enhanced", "transformer", "mean_pool"} <= set(list_models())
    assert len(list_models()) >= 4
    with pytest.raises(ValueError, match="unknown model"):
        create_model("nope", feature_dim=4, num_classes=2)


def test_a_family_takes_only_its_own_arguments() -> None:
    """No constructor discards an argument: an argument a family does not use is refused, with a suggestion."""
    assert set(model_arguments("linear")) == {"dropout", "pooling"}
    with pytest.raises(ConfigError, match=r"'linear' takes no argument\(s\) \['hidden_size'\].*accepts"):
        create_model("linear", feature_dim=4, num_classes=2, hidden_size=8)
    with pytest.raises(ConfigError, match=r"did you mean 'hidden_size'.*model_args\.super_enhanced accepts"):
        create_model("super_enhanced", feature_dim=4, num_classes=2, hiden_size=8)
    for path in (ROOT / "research" / "models").glob("*.py"):
        deleted = [node.lineno for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.Delete)]
        assert not deleted, f"{path.name} deletes arguments at lines {deleted}"
    model = create_model("gru", feature_dim=4, num_classes=2, hidden_size=8)
    assert model.config["kwargs"] == {"feature_dim": 4, "num_classes": 2, **model_arguments("gru"), "hidden_size": 8}


@pytest.mark.parametrize("name", list_models())
def test_legacy_checkpoint_loads_with_the_same_logits(name: str) -> None:
    """Checkpoints written before each family took only its own arguments still load, and give the same logits."""
    path = LEGACY / f"{name}.pt"
    if not path.exists():
        pytest.skip(f"no checkpoint of {name} predates issue #21")
    recorded = json.loads((LEGACY / "logits.json").read_text())
    torch.manual_seed(recorded["features_seed"])
    features, num_frames = torch.randn(*recorded["shape"]), torch.tensor(recorded["num_frames"])
    model = build_model(load_checkpoint(path)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(features, num_frames), torch.tensor(recorded["logits"][name]))
    bad = load_checkpoint(path)
    bad["model"]["kwargs"]["hiden_size"] = 8  # not a retired argument: refused, not dropped
    with pytest.raises(ConfigError, match="hiden_size"):
        build_model(bad)


@pytest.mark.parametrize("name", list_models())
def test_padding_does_not_change_logits(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, feature_dim=48, num_classes=4, **small(name)).eval()
    features, num_frames = torch.randn(3, 9, 48), torch.tensor([9, 4, 6])
    for t in range(9):  # the file convention: zeros after the real frames
        features[t >= num_frames, t] = 0.0
    padded = torch.cat([features, torch.randn(3, 7, 48) * 3], dim=1)  # even garbage padding
    padded[:, :9] = features
    with torch.inference_mode():
        torch.testing.assert_close(model(features, num_frames), model(padded, num_frames), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", list_models())
def test_every_model_learns_on_real_features(name: str, tiny_features: Path) -> None:
    torch.manual_seed(0)
    ds = FeatureDataset(tiny_features / "train_features_multiscale.h5")
    features, num_frames, labels = (
        torch.stack([ds[i][0] for i in range(len(ds))]),
        torch.tensor(ds.num_frames),
        torch.tensor(ds.labels),
    )
    model = create_model(name, feature_dim=ds.feature_dim, num_classes=ds.num_classes, **small(name))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def loss_now() -> float:
        model.eval()
        with torch.no_grad():
            return loss_fn(model(features, num_frames), labels).item()

    before = loss_now()
    model.train()
    for _ in range(25):
        optimizer.zero_grad()
        loss_fn(model(features, num_frames), labels).backward()
        optimizer.step()
    assert loss_now() < 0.5 * before


def test_super_enhanced_matches_the_seed_table() -> None:
    """Seed 003 at D=1280: count every layer of the table by hand, compare, and land near 64 M."""
    d, h, heads, c = 1280, 768, 12, 4
    w = 2 * h
    inp = d * h + h + 2 * h  # Linear + LayerNorm
    lstm = sum(2 * (4 * h * (i + h) + 8 * h) for i in (h, w, w, w))  # 4 bidirectional layers
    attention = 4 * w * w + 4 * w + 2 * w  # in/out projections + LayerNorm
    pooling = w + 1
    dims = [w, 768, 512, 256]
    classifier = sum(a * b + b + 2 * b for a, b in itertools.pairwise(dims)) + 256 * c + c
    model = create_model("super_enhanced", feature_dim=d, num_classes=c, hidden_size=h, num_layers=4, num_heads=heads)
    assert count_parameters(model) == inp + lstm + attention + pooling + classifier
    assert 63e6 < count_parameters(model) < 65e6
    assert model.lstm.bidirectional and model.lstm.num_layers == 4 and model.attention.num_heads == 12
