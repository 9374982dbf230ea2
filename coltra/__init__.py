"""Coltra: multi-agent-first reinforcement learning."""
