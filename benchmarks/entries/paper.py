"""The paper's Table 1, row by row as printed, and its final model.

Table 1's rows ran "around 50 epochs"; the final model is row 6's architecture for 80.
Parameter counts are computed from the configs; `params` is only what the paper printed.
Table 1 prints "the highest accuracies" and "the best test accuracy we obtained" (§2.1): the
best epoch's, so its rows are judged on best-epoch accuracy (BEST). The final model's 90.86%
is its last epoch's (FINAL; in the authors' notebook the last epoch is also the best).
"""

from benchmarks.registry import BEST, FINAL, Paper, arch, entry
from resnet.config import TrainConfig

TABLE1 = TrainConfig(epochs=50)
# Row 5 is printed as [2,2,2,2] blocks with 5.4M parameters; the two cannot both hold. The 2x2
# shortcut convs of layers 2-4 (64->128, 128->256, 256->512) add 3 weights per input-output pair
# over 1x1 ones: 3 x (64*128 + 128*256 + 256*512) = 516,096 parameters.
ROW5_ARITHMETIC = (
    "the arithmetic: 2x2 shortcut convs in layers 2-4 add 3 x (64·128 + 128·256 + 256·512) = "
    "516,096 parameters over 1x1 ones; [2,2,2,2] at 64-512 (ResNet-18, 11,173,962) becomes "
    "11,690,058 = 11.7M, and [1,1,1,1] (row 3, 4,903,242) becomes 5,419,338 = the printed 5.4M",
    "rows 3, 4 and 5 then form one control-variable series around row 3 ([1,1,1,1] at 64-512): "
    "row 4 changes P, row 5 changes K, as the paper's prose tried K and P 'to make sure that our "
    "ResNet model has less than 5M trainable parameters'",
)
ROW5_PRINTED = (
    "row 5 as printed: blocks [2,2,2,2], which gives 11,690,058 parameters, not the printed 5.4M; "
    "the parameter count points to a misprint of the blocks, judged as table1/row5-as-counted",
    *ROW5_ARITHMETIC,
)
ROW5_COUNTED = (
    "row 5 as its parameter count reads: blocks [1,1,1,1] (the paper prints [2,2,2,2]), which "
    "gives 5,419,338 parameters, the printed 5.4M; table1/row5 judges the blocks as printed",
    *ROW5_ARITHMETIC,
    "the paper's 88.43% is judged against both readings; the authors published no code for "
    "row 5, so which network they trained is inferred from the count, not known",
)
SGD_UNKNOWN = (
    "the authors never published their SGD settings: the momentum and weight decay of the paper's "
    "Figures 3-6 are unknown; this entry uses momentum 0 and no weight decay (plain SGD, the same "
    "lr and "
    "schedule), which is one guess among many",
)


@entry("table1/row1", paper=Paper(num=1, accuracy=84.8, params="1.9M", epochs=50, metric=BEST))
def row1():
    """Table 1 row 1: [2,2,2,2] blocks at 16-128 channels, 5x5 convs."""
    return arch(blocks=[2, 2, 2, 2], channels=[16, 32, 64, 128], conv_kernel=5), TABLE1


@entry("table1/row2", paper=Paper(num=2, accuracy=86.6, params="2.79M", epochs=50, metric=BEST))
def row2():
    """Table 1 row 2: [2,2,2,2] blocks at 32-256 channels."""
    return arch(blocks=[2, 2, 2, 2], channels=[32, 64, 128, 256]), TABLE1


@entry("table1/row3", paper=Paper(num=3, accuracy=91.78, params="4.9M", epochs=50, metric=BEST))
def row3():
    """Table 1 row 3: one block per layer at 64-512 channels (the paper's best row)."""
    return arch(blocks=[1, 1, 1, 1], channels=[64, 128, 256, 512]), TABLE1


@entry(
    "table1/row4",
    paper=Paper(num=4, accuracy=89.10, digits=2, params="4.9M", epochs=50, metric=BEST),
)
def row4():
    """Table 1 row 4: row 3 with a 3x3 average pool."""
    return arch(blocks=[1, 1, 1, 1], channels=[64, 128, 256, 512], pool_kernel=3), TABLE1


@entry(
    "table1/row5",
    paper=Paper(num=5, accuracy=88.43, params="5.4M", epochs=50, metric=BEST, notes=ROW5_PRINTED),
)
def row5():
    """Table 1 row 5 as printed: [2,2,2,2] at 64-512 with 2x2 shortcut convs (11.7M, not the printed 5.4M)."""  # noqa: E501 (the first line is the entry's description)
    return arch(blocks=[2, 2, 2, 2], channels=[64, 128, 256, 512], skip_kernel=2), TABLE1


@entry(
    "table1/row5-as-counted",
    paper=Paper(num=5, accuracy=88.43, params="5.4M", epochs=50, metric=BEST, notes=ROW5_COUNTED),
)
def row5_as_counted():
    """Table 1 row 5 as its 5.4M parameters read: row 3's [1,1,1,1] at 64-512 with 2x2 shortcut convs."""  # noqa: E501 (the first line is the entry's description)
    return arch(blocks=[1, 1, 1, 1], channels=[64, 128, 256, 512], skip_kernel=2), TABLE1


@entry(
    "table1/row6",
    paper=Paper(num=6, accuracy=90.70, digits=2, params="4.9M", epochs=50, metric=BEST),
)
def row6():
    """Table 1 row 6: [4,6,4,3] blocks at 32-256 channels (the final architecture)."""
    return arch(blocks=[4, 6, 4, 3], channels=[32, 64, 128, 256]), TABLE1


@entry("table1/row7", paper=Paper(num=7, accuracy=90.93, params="4.99M", epochs=50, metric=BEST))
def row7():
    """Table 1 row 7: [5,7,4,3] blocks at 32-256 channels."""
    return arch(blocks=[5, 7, 4, 3], channels=[32, 64, 128, 256]), TABLE1


FINAL_LOSS = (
    "the paper's test loss of 0.42 (the authors' notebook prints 0.4283 at the last epoch, "
    "benchmarks/reference/) is the authors' definition: each test batch's mean loss, averaged over "
    "the 79 "
    "batches, the last of which holds 16 images (10,000 = 78 x 128 + 16); the report compares it "
    "with that "
    "definition (test_loss_batchmean), not with the per-image mean",
)


@entry(
    "paper/final",
    paper=Paper(
        accuracy=90.86,
        params="4,902,186",
        epochs=80,
        test_loss=0.42,
        metric=FINAL,
        notes=FINAL_LOSS,
    ),
)
def final():
    """The paper's final model: row 6's architecture trained for 80 epochs."""
    return arch(blocks=[4, 6, 4, 3], channels=[32, 64, 128, 256]), TrainConfig(epochs=80)


@entry("paper/sgd", paper=Paper(epochs=80, notes=SGD_UNKNOWN))
def sgd():
    """Figures 3-6: the final model with plain SGD at the same lr and schedule (paper: below 80%)."""  # noqa: E501 (the first line is the entry's description)
    return arch(blocks=[4, 6, 4, 3], channels=[32, 64, 128, 256]), TrainConfig(
        epochs=80, optimizer="sgd"
    )


@entry("paper/epochs120", paper=Paper(epochs=120))
def epochs120():
    """Figure 7: the final model run for 120 epochs, where the paper saw it overfit past 80."""
    return arch(blocks=[4, 6, 4, 3], channels=[32, 64, 128, 256]), TrainConfig(epochs=120)
