"""The names of the models of :mod:`stingy.empirical.models`, apart from the models themselves
so that the command line's help lists them without loading torch."""

MODEL_NAMES = ("cnn", "preresnet20", "preresnet32", "resnet18", "resnet34", "mobilenetv2",
               "shufflenetv2")
