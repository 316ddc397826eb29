"""Instruction-tuning of an image generator on the vistune mixture, and held-out evaluation.

    train.model        generators (pure torch): the Generator interface, the rectified-flow pixel DiT
    train.data         task-sample streams -> batches at the model resolution, exact resume
    train.loop         the training loop (`train(TrainConfig, GeneratorConfig, stream_factory)`)
    train.checkpoint   atomic checkpoints, `load_generator`
    train.predict      `predict(model, samples, steps, guidance, seed)`
    train.distributed  DDP (torchrun) and Ray Train wrappers
"""
