"""One torch thread for this layer's small tensors: on a shared 2-core machine, intra-op
threads spin-wait on each other and make tiny ops tens of times slower. ``small_task``: a
simulation config cut to a task that trains in a second."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_task(config):
    """``config`` on 20 classes, 600 training and 200 test examples, a 50-example probe."""
    return config.replace(task=config.task.replace(classes=20, train_size=600, test_size=200),
                          log=config.log.replace(probe_examples=50))


@pytest.fixture(name="small_task")
def small_task_fixture():
    return small_task
