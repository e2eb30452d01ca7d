"""Empirical layer: CIFAR data, models, training, knowledge distillation and data-free KD."""
