"""The setting: data model (dictionary, latent, augmentation), the loss-family registry
(families) and the Setting that holds one population-loss landscape's definition. Knows
nothing of evaluators or solvers."""
