"""Programmatic entry points over bundle workflows: training, evaluation, inference, LR range test."""
