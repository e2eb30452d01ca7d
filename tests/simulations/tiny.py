"""The tiny simulation config shared by the CLI tests (seconds to run)."""

TINY = """
[task]
classes = 10
train_size = 200
test_size = 200
[student]
steps = 8
seeds = 2
batch_size = 50
hidden = 8
[probe]
temperatures = [5.0, 20.0]
[log]
probe_examples = 20
"""
