"""Training: crop caches, data modules, LightningModules, self-blended fakes, the LightningCLI."""
