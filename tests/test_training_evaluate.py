import torch

from xaisec.data import ImageDataset
from xaisec.training import accuracy
from xaisec.training.evaluate import predict


class Thresh(torch.nn.Module):
    """Predicts class 1 when the mean pixel is above 0.5."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        m = x.mean((1, 2, 3))
        return torch.stack([0.5 - m, m - 0.5], 1)


def test_accuracy_counts_correct_predictions():
    imgs = torch.tensor([0, 255, 255, 0], dtype=torch.uint8).view(4, 1, 1, 1).expand(4, 1, 2, 2).contiguous()
    ds = ImageDataset(imgs, torch.tensor([0, 1, 0, 0]), ["a", "b"])
    assert predict(Thresh(), ds, batch_size=3).tolist() == [0, 1, 1, 0]
    assert accuracy(Thresh(), ds, batch_size=3) == 0.75
