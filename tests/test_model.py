"""The model family: parameter counts, shapes and configuration errors, over every entry."""

import pytest
import torch

from benchmarks import registry
from resnet.model import ConfigError, ResNetConfig, count_parameters
from resnet.network import build_model

ENTRIES = registry.entries()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_entry_builds_and_counts(entry):
    model = build_model(entry.model)
    counted = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert counted == entry.param_count == count_parameters(model)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_final_model_has_the_papers_exact_count():
    # The one count the paper prints exactly; the others it rounds (see the report notes).
    assert registry.get("paper/final").param_count == 4_902_186
    assert registry.get("table1/row6").param_count == 4_902_186


def test_table1_as_printed():
    table1 = [e for e in ENTRIES if e.group == "table1"]
    # Row 5 has two entries: the blocks as printed, and the reading its printed 5.4M supports.
    assert sorted(e.paper.num for e in table1) == [1, 2, 3, 4, 5, 5, 6, 7]
    rows = {e.paper.num: e for e in table1 if e.name != "table1/row5-as-counted"}
    assert rows[1].model.conv_kernel == (5,) * 4 and rows[5].model.skip_kernel == (2,) * 4
    assert rows[4].model.pool_kernel == 3 and rows[7].model.blocks == (5, 7, 4, 3)
    assert all(r.train.epochs == 50 for r in rows.values())
    # Pooling a 4x4 map with P=3 (stride 3) leaves one position, so rows 3 and 4 match.
    assert rows[3].param_count == rows[4].param_count
    # Row 5 as printed is wider than ResNet-18 itself, far from the printed 5.4M.
    assert rows[5].param_count == 11_690_058
    as_counted = registry.get("table1/row5-as-counted")
    assert as_counted.model.blocks == (1, 1, 1, 1) and as_counted.model.skip_kernel == (2,) * 4
    assert as_counted.param_count == 5_419_338


def test_kuangliu_resnet18_count():
    assert count_parameters(ResNetConfig()) == 11_173_962


def test_block_structure():
    m = build_model(ResNetConfig(blocks=(1, 1, 1, 1), channels=(8, 16, 32, 64), skip_kernel=2))
    first, second = m.layers[0][0], m.layers[1][0]
    assert len(first.shortcut) == 0  # same channels, stride 1: identity
    conv = second.shortcut[0]
    assert (
        conv.kernel_size == (2, 2)
        and conv.stride == (2, 2)
        and conv.padding == (0, 0)
        and conv.bias is None
    )
    assert second.conv1.stride == (2, 2) and second.conv1.padding == (1, 1)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(layers=3), "blocks"),
        (dict(channels=(16, 32, 64)), "channels"),
        (dict(blocks=(2, 0, 2, 2)), "blocks"),
        (dict(channels=(16, -1, 64, 128)), "channels"),
        (dict(conv_kernel=4), "conv_kernel"),
        (dict(skip_kernel=3), "skip_kernel"),
        (dict(pool_kernel=5), "pool_kernel"),
        (dict(pool_kernel=0), "pool_kernel"),
        (dict(layers=0), "layers"),
        (dict(blocks="2222"), "blocks"),
        (dict(conv_kernel=(3, 3.0, 3, 3)), "conv_kernel"),
    ],
)
def test_invalid_configs_name_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}:"):
        ResNetConfig(**kwargs)


def test_other_depths():
    cfg = ResNetConfig(
        layers=3,
        blocks=(1, 1, 1),
        channels=(8, 16, 32),
        conv_kernel=3,
        skip_kernel=1,
        pool_kernel=8,
    )
    assert build_model(cfg)(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ConfigError, match="pool_kernel"):
        ResNetConfig(
            layers=5,
            blocks=(1,) * 5,
            channels=(8,) * 5,
            conv_kernel=3,
            skip_kernel=1,
            pool_kernel=4,
        )


def test_deep_nets_shrink_the_map_as_the_convs_do():
    # 32 -> 16 -> 8 -> 4 -> 2 -> 1 -> 1: odd kernels with padding F//2 and stride 2 round up, not
    # down.
    cfg = ResNetConfig(layers=7, blocks=1, channels=8, conv_kernel=3, skip_kernel=1, pool_kernel=1)
    assert cfg.final_map == 1 and build_model(cfg)(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_nesterov_needs_sgd_with_momentum():
    from resnet.config import TrainConfig

    with pytest.raises(ConfigError, match="^nesterov:"):
        TrainConfig(optimizer="sgd", nesterov=True)
    assert TrainConfig(optimizer="sgd", nesterov=True, momentum=0.9).nesterov
