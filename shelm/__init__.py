"""shelm: frozen pretrained language models as the memory of reinforcement-learning agents.

The HELM family (HELM, HELMv2, Semantic HELM) and the papers' baselines, trained by one PPO.
"""

__version__ = "0.1.0"
