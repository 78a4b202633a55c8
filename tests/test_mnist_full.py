"""The command line's main job on the full real MNIST (60,000 + 10,000 images under
``$FASTNN_DATA/mnist/``): five epochs reach 97 % test accuracy."""
import re

import pytest

from fastnn.cli import main


def test_train_on_full_mnist_reaches_97_percent(shared_data, capsys):
    folder = shared_data / "mnist"
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the full MNIST is not in {folder}")
    assert main(["train", "--dataset", "mnist", "--data-dir", str(folder), "--epochs", "5",
                 "--verbose", "0"]) == 0
    out = capsys.readouterr().out
    assert "60000 train / 10000 test rows" in out.replace(",", "")
    accuracy = float(re.search(r"accuracy ([\d.]+)", out.split("test:")[1]).group(1))
    assert accuracy >= 0.97, out
