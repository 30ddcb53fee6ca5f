"""The stages: train, evaluate, predict. Each takes paths and settings; nothing runs on import."""
