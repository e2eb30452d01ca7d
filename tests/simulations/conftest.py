"""One torch thread for this layer's small tensors: on a shared 2-core machine, intra-op
threads spin-wait on each other and make tiny ops tens of times slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
